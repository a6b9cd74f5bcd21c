package imap

// StoreOptions contains options for the STORE command.
type StoreOptions struct {
	UnchangedSince uint64 // requires CONDSTORE
	// HasUnchangedSince is set when the UNCHANGEDSINCE modifier is given,
	// which tells UNCHANGEDSINCE 0 from none: with 0, the store fails for
	// every existing message (RFC 7162 section 3.1.3).
	HasUnchangedSince bool
}

// StoreFlagsOp is a flag operation: set, add or delete.
type StoreFlagsOp int

const (
	StoreFlagsSet StoreFlagsOp = iota
	StoreFlagsAdd
	StoreFlagsDel
)

// StoreFlags alters message flags.
type StoreFlags struct {
	Op     StoreFlagsOp
	Silent bool
	Flags  []Flag
}
