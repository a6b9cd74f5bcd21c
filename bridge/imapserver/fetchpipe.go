package imapserver

import (
	"context"
	"fmt"

	"github.com/emersion/go-imap/v2"

	"github.com/asmtp/asmtp/mailstore"
)

// A FETCH of at least minPipelinedFetch messages reads and decodes their
// metadata on a second goroutine, in batches of fetchBatch with at most
// fetchBatchesAhead waiting, while the session's goroutine writes the
// responses: on two cores SQLite and the envelope decoding then run beside
// go-imap's encoding (FETCH 1:* (FLAGS ENVELOPE) of 10,000 messages spent
// about as long in each).
const (
	minPipelinedFetch = 256
	fetchBatch        = 64
	fetchBatchesAhead = 4
)

func (ss *session) fetchPipelined(targets []target, options *imap.FetchOptions, write func(target, *mailstore.MessageMeta) error) error {
	ctx, cancel := context.WithCancel(ss.ctx)
	defer cancel()
	batches := make(chan []mailstore.MessageMeta, fetchBatchesAhead)
	done := make(chan error, 1)
	go func() {
		defer close(batches)
		done <- ss.readMeta(ctx, targets, options, batches)
	}()
	err := writeMeta(targets, batches, write)
	if err != nil {
		cancel()
		for range batches { // let the reader see the cancel and stop
		}
		<-done
		return err
	}
	return storeError(<-done)
}

// readMeta sends the targets' metadata, detached from the store, in
// batches.
func (ss *session) readMeta(ctx context.Context, targets []target, options *imap.FetchOptions, batches chan<- []mailstore.MessageMeta) error {
	var batch []mailstore.MessageMeta
	send := func() error {
		select {
		case batches <- batch:
			batch = make([]mailstore.MessageMeta, 0, fetchBatch)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := ss.store().FetchItems(ctx, ss.sel.view.id, uidsOf(targets), metaItems(options), func(m mailstore.MessageMeta) error {
		if err := m.Detach(options.Envelope, options.BodyStructure != nil); err != nil {
			return err
		}
		if batch = append(batch, m); len(batch) == fetchBatch {
			return send()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = send()
	}
	return err
}

// writeMeta writes the responses for the metadata as it arrives.
func writeMeta(targets []target, batches <-chan []mailstore.MessageMeta, write func(target, *mailstore.MessageMeta) error) error {
	i := 0
	for batch := range batches {
		for k := range batch {
			m := &batch[k]
			for i < len(targets) && targets[i].uid != m.UID {
				i++
			}
			if i == len(targets) {
				return fmt.Errorf("store returned UID %d, not asked for", m.UID)
			}
			if err := write(targets[i], m); err != nil {
				return err
			}
		}
	}
	return nil
}
