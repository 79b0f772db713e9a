package route

import "strings"

// Topic filters, as MQTT defines them (MQTT 5.0 section 4.7):
//
//   - levels are separated by '/'; a level may be empty;
//   - '+' matches exactly one level, any value (including an empty one);
//   - '#' is last and matches its parent level and any number of levels
//     below it ("a/#" matches "a", "a/b" and "a/b/c");
//   - a topic whose first level starts with '$' ($SYS/...) is not matched
//     by a filter whose first level is a wildcard.

// MatchFilter reports whether the topic name is matched by the filter.
// Both are taken as given: a topic name containing '+' or '#' is matched
// level by level like any other string.
func MatchFilter(filter, topic string) bool {
	return covers(filter, topic, true)
}

// ValidFilter reports whether s is a well-formed topic filter: not empty,
// '#' only as a whole last level, '+' only as a whole level.
func ValidFilter(s string) bool {
	if s == "" {
		return false
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return false
			}
		case l == "+":
		case strings.ContainsAny(l, "+#"):
			return false
		}
	}
	return true
}

// Covers reports whether every topic the subscription filter sub can
// match is also matched by the filter acl: sub may itself contain
// wildcards, which acl must then cover with wildcards of its own ("a/+"
// covers "a/b" and "a/+", not "a/#"). For a topic name (no wildcards) it is
// the same as MatchFilter.
func Covers(acl, sub string) bool {
	return covers(acl, sub, false)
}

// covers implements MatchFilter (literal: wildcards in t are plain
// strings) and Covers (wildcards in t are wildcards). It walks both
// strings level by level without splitting them: it runs twice for every
// publish (routing, and the device registry), and the slices of
// strings.Split were most of the edge's allocations per message.
func covers(f, t string, literal bool) bool {
	dollar := strings.HasPrefix(t, "$")
	fMore, tMore := true, true // a level is left ("" has one, empty)
	for i := 0; fMore; i++ {
		var fl, tl string
		fl, f, fMore = nextLevel(f)
		tHas := tMore
		if tMore {
			tl, t, tMore = nextLevel(t)
		}
		switch fl {
		case "#":
			return !(i == 0 && dollar)
		case "+":
			if !tHas || (i == 0 && dollar) {
				return false
			}
			if !literal && tl == "#" {
				return false
			}
		default:
			// A wildcard level of a subscription is never equal to a
			// plain level, so it is not covered by one.
			if !tHas || tl != fl {
				return false
			}
		}
	}
	return !tMore
}

// nextLevel splits the first level off s; more is false when it was the
// last one (s held no '/').
func nextLevel(s string) (level, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}
