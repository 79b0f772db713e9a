package edge

import "strings"

// validTopicName reports whether s may be published to: not empty, no
// wildcard, no NUL.
func validTopicName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "+#\x00")
}

// sharePrefix is the first level of an MQTT 5 shared subscription,
// "$share/{group}/{filter}".
const sharePrefix = "$share/"

// stripShare returns the filter of a shared subscription without its
// "$share/{group}/" prefix, and any other filter unchanged.
func stripShare(filter string) string {
	if len(filter) < len(sharePrefix) || !strings.EqualFold(filter[:len(sharePrefix)], sharePrefix) {
		return filter
	}
	rest := filter[len(sharePrefix):]
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return filter
	}
	return rest[i+1:]
}
