package mailstore

import (
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// systemFlags in their canonical spelling and order. \Recent is not stored:
// it is a session property, not a message property.
var systemFlags = []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`}

// canonicalFlags validates flags and returns them de-duplicated (keywords
// compare case-insensitively, as IMAP says), system flags first in their
// canonical spelling, then keywords in the order given.
func canonicalFlags(flags []string) ([]string, error) {
	out := make([]string, 0, len(flags))
	var keywords []string
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			i := slices.IndexFunc(systemFlags, func(s string) bool { return strings.EqualFold(s, f) })
			if i < 0 { // includes \Recent, which only the server sets
				return nil, fmt.Errorf("%w: %q", ErrBadFlag, f)
			}
			continue
		}
		if f == "" || len(f) > MaxKeywordBytes || !validKeyword(f) {
			return nil, fmt.Errorf("%w: %q", ErrBadFlag, f)
		}
		if !slices.ContainsFunc(keywords, func(k string) bool { return strings.EqualFold(k, f) }) {
			keywords = append(keywords, f)
		}
	}
	for _, s := range systemFlags {
		if slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(s, f) }) {
			out = append(out, s)
		}
	}
	out = append(out, keywords...)
	if len(out) > MaxFlagsPerMessage {
		return nil, ErrTooManyFlags
	}
	return out, nil
}

// validKeyword reports whether s is an IMAP atom (RFC 3501 flag-keyword).
func validKeyword(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

func joinFlags(flags []string) string { return strings.Join(flags, " ") }

func splitFlags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// applyFlags returns cur changed by op with the canonical flags in arg.
func applyFlags(cur []string, op imap.StoreFlagsOp, arg []string) ([]string, error) {
	switch op {
	case imap.StoreFlagsSet:
		return arg, nil
	case imap.StoreFlagsAdd:
		return canonicalFlags(append(slices.Clone(cur), arg...))
	case imap.StoreFlagsDel:
		return slices.DeleteFunc(slices.Clone(cur), func(f string) bool {
			return slices.ContainsFunc(arg, func(a string) bool { return strings.EqualFold(a, f) })
		}), nil
	default:
		return nil, fmt.Errorf("unknown flag operation %v", op)
	}
}

func hasFlag(flags []string, flag string) bool {
	return slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(f, flag) })
}
