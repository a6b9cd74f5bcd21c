package passport

import "errors"

// Errors returned (wrapped, with context) by parsing and validation. Test
// for them with errors.Is.
var (
	// ErrMalformed: bytes that do not follow the block, entry or
	// PassportBlocks layout (lengths, sizes, version, entry type, alias,
	// recipient count).
	ErrMalformed = errors.New("malformed")
	// ErrBadSignature: a block or RegisterMasterKey signature does not verify.
	ErrBadSignature = errors.New("bad signature")
	// ErrContentHash: the header's content_hash does not match the content.
	ErrContentHash = errors.New("content hash mismatch")

	// ErrGenesisPrevious: a genesis block whose previous is not zero.
	ErrGenesisPrevious = errors.New("genesis block must have a zero previous")
	// ErrPreviousMismatch: a block that does not extend the current tip.
	ErrPreviousMismatch = errors.New("previous does not match the tip")
	// ErrUnauthorized: the block author is not an active master key.
	ErrUnauthorized = errors.New("author is not an active master key")
	// ErrTimeBackwards: a block older than its parent.
	ErrTimeBackwards = errors.New("block time is before its parent's")
	// ErrFutureTime: a block more than MaxFutureSkew ahead of now.
	ErrFutureTime = errors.New("block time is too far in the future")
	// ErrEntryTime: an entry created after its block.
	ErrEntryTime = errors.New("entry created after its block")
	// ErrRegistrationExpired: a RegisterMasterKey applied after its timeout.
	ErrRegistrationExpired = errors.New("master key registration expired")
	// ErrWrongPassportID: a RegisterMasterKey signed for another passport.
	ErrWrongPassportID = errors.New("master key registration is for another passport")
	// ErrKeyAlreadyActive: registering a key that is already active.
	ErrKeyAlreadyActive = errors.New("master key already active")
	// ErrAliasTaken: registering an alias used before (aliases are never freed).
	ErrAliasTaken = errors.New("alias already used")
	// ErrKeyNotActive: deregistering a key that is not active.
	ErrKeyNotActive = errors.New("master key not active")
	// ErrLastKey: deregistering the last active key.
	ErrLastKey = errors.New("cannot deregister the last master key")

	// ErrKnownBlock: the block is already in the passport.
	ErrKnownBlock = errors.New("block already applied")
	// ErrNoGenesis: a block set without a genesis block.
	ErrNoGenesis = errors.New("no genesis block")
	// ErrDuplicateBlock: the same block twice in one block set.
	ErrDuplicateBlock = errors.New("duplicate block")
	// ErrFork: two blocks with the same previous (two genesis blocks included).
	ErrFork = errors.New("fork: two blocks with the same previous")
	// ErrOrphan: blocks that do not chain from the genesis (or the tip).
	ErrOrphan = errors.New("block does not chain to the passport")

	// ErrNoSharedKey: the passport has no shared key yet.
	ErrNoSharedKey = errors.New("passport has no shared key")
	// ErrNotRecipient: the current shared key is not sealed to this master key.
	ErrNotRecipient = errors.New("shared key is not sealed to this master key")
	// ErrEmptyBlock: finalizing a block without entries.
	ErrEmptyBlock = errors.New("block has no entries")
)
