package mailstore

import (
	"mime"
	"strings"

	"github.com/emersion/go-message/charset"
)

var subjectDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// baseSubject extracts the base subject of RFC 5256 §2.1, which SORT
// SUBJECT and THREAD compare, and reports whether the extraction found the
// message to be a reply or forward (it removed a "Re:", "Fwd:", "(fwd)" or
// "[fwd: ...]"). The result is upper-cased in ASCII only, so comparing it
// byte by byte is the i;ascii-casemap collation.
func baseSubject(subject string) (string, bool) {
	decoded, err := subjectDecoder.DecodeHeader(subject)
	if err != nil {
		decoded = subject
	}
	// Step 1; the leading and trailing space it would keep, steps 2 and 3
	// would remove.
	s := strings.Join(strings.FieldsFunc(validUTF8(decoded), isSubjectSpace), " ")
	reply := false
	for {
		s = trimTrailers(s, &reply) // step 2
		s = trimLeaders(s, &reply)  // steps 3 to 5
		if !isFwdWrapped(s) {       // step 6
			return asciiUpper(s), reply // step 7
		}
		s = s[len("[fwd:") : len(s)-1]
		reply = true
	}
}

func isSubjectSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }

// trimTrailers removes subj-trailers: white space and "(fwd)".
func trimTrailers(s string, reply *bool) string {
	for {
		switch {
		case strings.HasSuffix(s, " "):
			s = s[:len(s)-1]
		case len(s) >= 5 && strings.EqualFold(s[len(s)-5:], "(fwd)"):
			s = s[:len(s)-5]
			*reply = true
		default:
			return s
		}
	}
}

// trimLeaders removes subj-leaders (white space, or blobs before a "re",
// "fw" or "fwd" and its colon) and leading blobs that leave something.
func trimLeaders(s string, reply *bool) string {
	for {
		if strings.HasPrefix(s, " ") {
			s = s[1:]
			continue
		}
		if rest, ok := cutRefwd(s); ok {
			s, *reply = rest, true
			continue
		}
		if rest, ok := cutBlob(s); ok && rest != "" {
			s = rest
			continue
		}
		return s
	}
}

// cutRefwd removes *subj-blob subj-refwd from the start of s.
func cutRefwd(s string) (string, bool) {
	for {
		rest, ok := cutBlob(s)
		if !ok {
			break
		}
		s = rest
	}
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "re"):
		s = s[2:]
	case strings.HasPrefix(lower, "fwd"):
		s = s[3:]
	case strings.HasPrefix(lower, "fw"):
		s = s[2:]
	default:
		return "", false
	}
	s = strings.TrimLeft(s, " ")
	if rest, ok := cutBlob(s); ok {
		s = rest
	}
	if !strings.HasPrefix(s, ":") {
		return "", false
	}
	return s[1:], true
}

// cutBlob removes a subj-blob ("[" *BLOBCHAR "]" *WSP) from the start of s.
func cutBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return "", false
	}
	end := strings.IndexAny(s[1:], "[]")
	if end < 0 || s[1+end] != ']' {
		return "", false
	}
	return strings.TrimLeft(s[end+2:], " "), true
}

func isFwdWrapped(s string) bool {
	return len(s) > len("[fwd:") && strings.EqualFold(s[:5], "[fwd:") && strings.HasSuffix(s, "]")
}

// asciiUpper upper-cases ASCII letters only (i;ascii-casemap).
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
