//go:build !unix

package metrics

func cpuSeconds() (float64, bool) { return 0, false }

func maxFDs() (float64, bool) { return 0, false }
