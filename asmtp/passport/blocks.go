package passport

import (
	"encoding/binary"
	"fmt"
)

// blockLenSize is the u32 BE length in front of each block in PassportBlocks.
const blockLenSize = 4

// EncodeBlocks encodes PassportBlocks: (u32 BE length ‖ block)*.
func EncodeBlocks(blocks []*Block) []byte {
	size := 0
	for _, b := range blocks {
		size += blockLenSize + b.Len()
	}
	out := make([]byte, 0, size)
	for _, b := range blocks {
		out = binary.BigEndian.AppendUint32(out, uint32(b.Len()))
		out = append(out, b.raw...)
	}
	return out
}

// DecodeBlocks decodes PassportBlocks and parses every block (ParseBlock).
// The blocks are returned in file order, which need not be chain order.
// Truncated input is an error (upstream panics on it).
func DecodeBlocks(data []byte) ([]*Block, error) {
	var blocks []*Block
	for off := 0; off < len(data); {
		rest := data[off:]
		if len(rest) < blockLenSize {
			return nil, fmt.Errorf("passport blocks: block %d at offset %d: truncated length: %w", len(blocks), off, ErrMalformed)
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[blockLenSize:]
		if n < HeaderSize || n > MaxBlockSize || uint64(n) > uint64(len(rest)) {
			return nil, fmt.Errorf("passport blocks: block %d at offset %d: length %d with %d bytes left: %w", len(blocks), off, n, len(rest), ErrMalformed)
		}
		b, err := ParseBlock(rest[:n])
		if err != nil {
			return nil, fmt.Errorf("passport blocks: block %d at offset %d: %w", len(blocks), off, err)
		}
		blocks = append(blocks, b)
		off += blockLenSize + int(n)
	}
	return blocks, nil
}

// chainOrder orders blocks by previous, starting from the block whose
// previous is from (the zero hash for a genesis). Every block must be used:
// duplicates, forks (two blocks with one previous) and blocks that do not
// chain from `from` are errors.
func chainOrder(from Hash, blocks []*Block) ([]*Block, error) {
	seen := make(map[Hash]bool, len(blocks))
	byPrevious := make(map[Hash]*Block, len(blocks))
	for _, b := range blocks {
		if seen[b.ID()] {
			return nil, fmt.Errorf("block %s: %w", b.ID(), ErrDuplicateBlock)
		}
		seen[b.ID()] = true
		prev := b.Header().Previous
		if other, ok := byPrevious[prev]; ok {
			if prev.IsZero() {
				return nil, fmt.Errorf("two genesis blocks %s and %s: %w", other.ID(), b.ID(), ErrFork)
			}
			return nil, fmt.Errorf("blocks %s and %s both follow %s: %w", other.ID(), b.ID(), prev, ErrFork)
		}
		byPrevious[prev] = b
	}
	ordered := make([]*Block, 0, len(blocks))
	inChain := make(map[Hash]bool, len(blocks))
	// The length bound also guards against a (cryptographically impossible) cycle.
	for next, ok := byPrevious[from]; ok && len(ordered) < len(blocks); next, ok = byPrevious[next.ID()] {
		ordered = append(ordered, next)
		inChain[next.ID()] = true
	}
	if len(ordered) == len(blocks) {
		return ordered, nil
	}
	if from.IsZero() && len(ordered) == 0 {
		return nil, fmt.Errorf("%d blocks: %w", len(blocks), ErrNoGenesis)
	}
	for _, b := range blocks {
		if !inChain[b.ID()] {
			return nil, fmt.Errorf("block %s (previous %s): %d of %d blocks do not chain from %s: %w",
				b.ID(), b.Header().Previous, len(blocks)-len(ordered), len(blocks), from, ErrOrphan)
		}
	}
	return nil, fmt.Errorf("chain order: %w", ErrOrphan) // unreachable: some block is not in the chain
}
