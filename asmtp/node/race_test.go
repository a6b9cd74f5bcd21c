//go:build race

package node

// raceDetector is set when the tests run with -race, which makes the
// 50-node network too slow for 2 cores.
const raceDetector = true
