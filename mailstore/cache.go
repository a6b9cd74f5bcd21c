package mailstore

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// The body structure, an interface in go-imap, is cached as the JSON of
// cachedPart, a tagged union of its two implementations. (The envelope has
// its own binary form, envelope.go.)

type cachedPart struct {
	// Single part.
	Type        string                           `json:"t,omitempty"`
	Subtype     string                           `json:"s,omitempty"`
	Params      map[string]string                `json:"p,omitempty"`
	ID          string                           `json:"id,omitempty"`
	Description string                           `json:"d,omitempty"`
	Encoding    string                           `json:"e,omitempty"`
	Size        uint32                           `json:"z,omitempty"`
	TextLines   *int64                           `json:"tl,omitempty"`
	Message     *cachedMessage                   `json:"m,omitempty"`
	Ext         *imap.BodyStructureSinglePartExt `json:"x,omitempty"`

	// Multipart, when Children is not empty.
	Children []*cachedPart                   `json:"c,omitempty"`
	MultiExt *imap.BodyStructureMultiPartExt `json:"mx,omitempty"`
}

type cachedMessage struct {
	Envelope *imap.Envelope `json:"e"` // JSON here: nested envelopes are rare
	Body     *cachedPart    `json:"b"`
	Lines    int64          `json:"l"`
}

func encodeStructure(bs imap.BodyStructure) ([]byte, error) {
	return json.Marshal(toCached(bs))
}

func toCached(bs imap.BodyStructure) *cachedPart {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		c := &cachedPart{Subtype: bs.Subtype, MultiExt: bs.Extended}
		for _, child := range bs.Children {
			c.Children = append(c.Children, toCached(child))
		}
		return c
	case *imap.BodyStructureSinglePart:
		c := &cachedPart{
			Type: bs.Type, Subtype: bs.Subtype, Params: bs.Params, ID: bs.ID,
			Description: bs.Description, Encoding: bs.Encoding, Size: bs.Size, Ext: bs.Extended,
		}
		if bs.Text != nil {
			c.TextLines = &bs.Text.NumLines
		}
		if m := bs.MessageRFC822; m != nil {
			c.Message = &cachedMessage{Envelope: m.Envelope, Body: toCached(m.BodyStructure), Lines: m.NumLines}
		}
		return c
	default:
		return &cachedPart{Type: "text", Subtype: "plain"}
	}
}

var errBadCache = errors.New("malformed cached body structure")

// decodeStructure turns cached JSON back into a body structure that go-imap
// can write without panicking: every multipart has children and every part
// has its extension data.
func decodeStructure(b []byte) (imap.BodyStructure, error) {
	var c cachedPart
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode cached body structure: %w", err)
	}
	return fromCached(&c, 0)
}

func fromCached(c *cachedPart, depth int) (imap.BodyStructure, error) {
	if c == nil || depth > 2*MaxMIMEDepth+2 {
		return nil, errBadCache
	}
	if len(c.Children) > 0 {
		mp := &imap.BodyStructureMultiPart{Subtype: c.Subtype, Extended: c.MultiExt}
		if mp.Extended == nil {
			mp.Extended = &imap.BodyStructureMultiPartExt{}
		}
		for _, child := range c.Children {
			bs, err := fromCached(child, depth+1)
			if err != nil {
				return nil, err
			}
			mp.Children = append(mp.Children, bs)
		}
		return mp, nil
	}
	sp := &imap.BodyStructureSinglePart{
		Type: c.Type, Subtype: c.Subtype, Params: c.Params, ID: c.ID,
		Description: c.Description, Encoding: c.Encoding, Size: c.Size, Extended: c.Ext,
	}
	if sp.Extended == nil {
		sp.Extended = &imap.BodyStructureSinglePartExt{}
	}
	if c.TextLines != nil {
		sp.Text = &imap.BodyStructureText{NumLines: *c.TextLines}
	}
	if m := c.Message; m != nil {
		inner, err := fromCached(m.Body, depth+1)
		if err != nil {
			return nil, err
		}
		env := m.Envelope
		if env == nil {
			env = &imap.Envelope{}
		}
		sp.MessageRFC822 = &imap.BodyStructureMessageRFC822{Envelope: env, BodyStructure: inner, NumLines: m.Lines}
	}
	return sp, nil
}
