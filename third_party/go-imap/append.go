package imap

import (
	"time"
)

// AppendOptions contains options for the APPEND command.
type AppendOptions struct {
	Flags []Flag
	Time  time.Time
}

// AppendData is the data returned by an APPEND command.
type AppendData struct {
	// requires UIDPLUS or IMAP4rev2
	UID         UID
	UIDValidity uint32
	// UIDs are all the messages' UIDs, in order, for an APPEND of several
	// (MULTIAPPEND); UID is then unused.
	UIDs UIDSet
}

// CatenatePart is one part of a message an APPEND builds with CATENATE
// (RFC 4469): literal text, or an IMAP URL naming a message or part.
type CatenatePart struct {
	Text LiteralReader // nil for a URL part
	URL  string
}
