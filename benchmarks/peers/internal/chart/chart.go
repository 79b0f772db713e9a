// Package chart draws the line charts of the soak and of the comparison
// with the peers as small PNG files, with gonum/plot.
package chart

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Series is one line: points (X[i], Y[i]); a NaN Y leaves a gap.
type Series struct {
	Name string
	X, Y []float64
}

// Panel is one chart.
type Panel struct {
	Title, XLabel, YLabel string
	LogX, LogY            bool
	Series                []Series
	// HLines are dashed horizontal reference lines, by name.
	HLines map[string]float64
	// LegendBottomRight puts the legend in the bottom right corner
	// (CDFs); otherwise it is top left, above the lines: a linear Y axis
	// starts at 0 and gets headroom for it.
	LegendBottomRight bool
}

// Save draws the panels in a grid of cols columns, each w×h centimetres,
// into a PNG file at path.
func Save(path string, cols int, w, h vg.Length, panels ...Panel) error {
	if cols < 1 || len(panels) == 0 {
		return fmt.Errorf("chart: %s: no panels", path)
	}
	rows := (len(panels) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, cols)
	}
	for i, pn := range panels {
		p, err := build(pn)
		if err != nil {
			return fmt.Errorf("chart: %s: %s: %w", path, pn.Title, err)
		}
		plots[i/cols][i%cols] = p
	}
	img := vgimg.NewWith(vgimg.UseWH(w*vg.Length(cols), h*vg.Length(rows)), vgimg.UseDPI(72))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 2, PadY: vg.Millimeter * 2,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(plots, tiles, dc)
	for r := range plots {
		for c := range plots[r] {
			if plots[r][c] != nil {
				plots[r][c].Draw(canvases[r][c])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("chart: %s: %w", path, err)
	}
	return f.Close()
}

func build(pn Panel) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = pn.Title
	p.X.Label.Text = pn.XLabel
	p.Y.Label.Text = pn.YLabel
	p.Legend.Top = !pn.LegendBottomRight
	p.Legend.Left = !pn.LegendBottomRight
	if pn.LogX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if pn.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Add(plotter.NewGrid())
	for i, s := range pn.Series {
		// A NaN (or, on a log axis, a non-positive value) breaks the line.
		var seg plotter.XYs
		labelled := false
		flush := func() error {
			if len(seg) == 0 {
				return nil
			}
			l, pts, err := plotter.NewLinePoints(seg)
			if err != nil {
				return err
			}
			l.Color = plotutil.Color(i)
			l.Dashes = plotutil.Dashes(i / 7)
			pts.Color = plotutil.Color(i)
			pts.Shape = plotutil.Shape(i)
			pts.Radius = vg.Points(2)
			p.Add(l)
			if len(s.X) <= 40 {
				p.Add(pts)
			}
			if !labelled {
				p.Legend.Add(s.Name, l)
				labelled = true
			}
			seg = nil
			return nil
		}
		for j := range s.X {
			y := s.Y[j]
			bad := math.IsNaN(y) || math.IsInf(y, 0) || (pn.LogY && y <= 0) || (pn.LogX && s.X[j] <= 0)
			if bad {
				if err := flush(); err != nil {
					return nil, err
				}
				continue
			}
			seg = append(seg, plotter.XY{X: s.X[j], Y: y})
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if !pn.LegendBottomRight && !pn.LogY {
		// Room above the data for the legend, one line per entry.
		top := math.Inf(-1)
		for _, s := range pn.Series {
			for _, y := range s.Y {
				if !math.IsNaN(y) && !math.IsInf(y, 0) {
					top = max(top, y)
				}
			}
		}
		for _, y := range pn.HLines {
			top = max(top, y)
		}
		if !math.IsInf(top, -1) && top > 0 {
			p.Y.Min = min(p.Y.Min, 0)
			p.Y.Max = top * (1.1 + 0.09*float64(len(pn.Series)+len(pn.HLines)))
		}
	}
	for name, y := range pn.HLines {
		l := plotter.NewFunction(func(float64) float64 { return y })
		l.Color = color.Gray{Y: 120}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(name, l)
	}
	return p, nil
}
