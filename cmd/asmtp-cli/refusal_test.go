package main

import (
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// A node's refusals come back as explanations, quickly: a wrong --remote-id
// fails the handshake naming the id it expected, and a device that is not
// in the node's users is told to get its key added, instead of waiting.
func TestRefusals(t *testing.T) {
	user := newDevice(t, "user")
	userKey, _ := user.identity()
	stranger := newDevice(t, "stranger")
	strangerKey, _ := stranger.identity()
	n := startNode(t, []keys.PublicKey{userKey})
	wrongID := keys.Public(newNodeKey(t))

	tests := []struct {
		name   string
		device *device
		id     keys.PublicKey
		want   []string
	}{
		{
			name:   "wrong remote id",
			device: user,
			id:     wrongID,
			want:   []string{"expected node id " + wrongID.String(), "--remote-id", "did not answer as that id"},
		},
		{
			name:   "device not in users",
			device: stranger,
			id:     n.ID(),
			want:   []string{"does not take this device as one of its users", "Add this device key to `users`", strangerKey.String()},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.device.useNode(n)
			tc.device.env[envRemoteID] = tc.id.String()
			start := time.Now()
			out, errOut, err := tc.device.run("", "sync")
			if err == nil {
				t.Fatalf("sync succeeded: %q %q", out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			// --timeout is 3 s: the refusal takes at most that.
			if d := time.Since(start); d > 6*time.Second {
				t.Errorf("refusal took %v", d)
			}
		})
	}
	// The user itself is served.
	user.useNode(n)
	if _, errOut, err := user.run("", "sync"); err != nil {
		t.Fatalf("the node's user: %v\n%s", err, errOut)
	}
}
