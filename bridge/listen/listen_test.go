package listen

import "testing"

func TestOpen(t *testing.T) {
	for _, c := range []struct {
		addr string
		tls  bool
		ok   bool
	}{
		{"127.0.0.1:0", false, true},
		{"[::1]:0", false, true},
		{"localhost:0", false, true},
		{"0.0.0.0:0", false, false},
		{"[::]:0", false, false},
		{"0.0.0.0:0", true, true},
		{"not an address", false, false},
	} {
		ln, err := Open(c.addr, c.tls)
		if (err == nil) != c.ok {
			t.Errorf("Open(%q, tls=%v): %v, want ok=%v", c.addr, c.tls, err, c.ok)
		}
		if ln != nil {
			ln.Close()
		}
	}
}
