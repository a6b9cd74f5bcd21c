package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The CONDSTORE and QRESYNC rows: a client that last synchronised at
// mod-sequence m comes back after another client changed the flags of one
// message in 100. SEARCH MODSEQ finds those; SELECT with QRESYNC answers
// the SELECT plus a FETCH for each (and a VANISHED, empty here: the rows
// after these must see the same mailbox).

// measureCondStore adds the rows "SEARCH MODSEQ (CONDSTORE)" and
// "QRESYNC SELECT".
func measureCondStore(measure func(string, func(target) ([]time.Duration, error)) error, messages, runs int) error {
	marks := make(map[string]syncPoint)
	if err := measure("SEARCH MODSEQ (CONDSTORE)", func(t target) ([]time.Duration, error) {
		p, err := changeOneIn100(t, messages)
		if err != nil {
			return nil, err
		}
		marks[t.name] = p
		return repeat(t, runs+1, "EXAMINE INBOX (CONDSTORE)", fmt.Sprintf("UID SEARCH MODSEQ %d", p.modSeq+1))
	}); err != nil {
		return err
	}
	return measure(fmt.Sprintf("QRESYNC SELECT (%d messages, 1%% changed)", messages), func(t target) ([]time.Duration, error) {
		p := marks[t.name]
		sel := fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d 1:%d))", p.uidValidity, p.modSeq, messages)
		if err := checkResync(t, sel, messages/100); err != nil {
			return nil, err
		}
		return repeat(t, runs+1, "ENABLE QRESYNC", sel)
	})
}

// checkResync makes sure the timed SELECT does the work: at least changed
// untagged responses beyond SELECT's own.
func checkResync(t target, sel string, changed int) error {
	c, err := dial(t)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.login(t); err != nil {
		return err
	}
	if _, st, err := c.cmd("ENABLE QRESYNC"); err != nil || !strings.Contains(st, "OK") {
		return fmt.Errorf("ENABLE QRESYNC: %s %v", st, err)
	}
	n, st, err := c.cmd(sel)
	if err != nil || !strings.Contains(st, "OK") || n < changed {
		return fmt.Errorf("%s: %d untagged responses, want at least %d: %s %v", sel, n, changed, st, err)
	}
	return nil
}

// syncPoint is what a client remembers of INBOX at its last sync.
type syncPoint struct {
	uidValidity uint32
	modSeq      uint64
}

var (
	statusModSeq      = regexp.MustCompile(`HIGHESTMODSEQ (\d+)`)
	statusUIDValidity = regexp.MustCompile(`UIDVALIDITY (\d+)`)
)

// changeOneIn100 notes INBOX's sync point and then flags every 100th
// message, toggling $Bench so that each call changes them again.
func changeOneIn100(t target, messages int) (syncPoint, error) {
	c, err := dial(t)
	if err != nil {
		return syncPoint{}, err
	}
	defer c.close()
	if err := c.login(t); err != nil {
		return syncPoint{}, err
	}
	p, err := c.syncPoint()
	if err != nil {
		return syncPoint{}, err
	}
	if _, st, err := c.cmd("SELECT INBOX"); err != nil || !strings.Contains(st, "OK") {
		return syncPoint{}, fmt.Errorf("SELECT: %s %v", st, err)
	}
	var seqs []string
	for i := 100; i <= messages; i += 100 {
		seqs = append(seqs, strconv.Itoa(i))
	}
	for _, op := range []string{"-FLAGS.SILENT", "+FLAGS.SILENT"} {
		if _, st, err := c.cmd("STORE " + strings.Join(seqs, ",") + " " + op + " ($Bench)"); err != nil || !strings.Contains(st, "OK") {
			return syncPoint{}, fmt.Errorf("STORE: %s %v", st, err)
		}
	}
	return p, nil
}

// syncPoint asks STATUS for INBOX's UIDVALIDITY and HIGHESTMODSEQ.
func (c *client) syncPoint() (syncPoint, error) {
	c.n++
	tag := "c" + strconv.Itoa(c.n)
	fmt.Fprintf(c.w, "%s STATUS INBOX (UIDVALIDITY HIGHESTMODSEQ)\r\n", tag)
	if err := c.w.Flush(); err != nil {
		return syncPoint{}, err
	}
	var p syncPoint
	for {
		line, err := c.readLine()
		if err != nil {
			return p, err
		}
		if m := statusModSeq.FindStringSubmatch(line); m != nil {
			p.modSeq, _ = strconv.ParseUint(m[1], 10, 64)
		}
		if m := statusUIDValidity.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 32)
			p.uidValidity = uint32(v)
		}
		if strings.HasPrefix(line, tag+" ") {
			if !strings.Contains(line, "OK") || p.modSeq == 0 {
				return p, fmt.Errorf("STATUS: %s", strings.TrimSpace(line))
			}
			return p, nil
		}
	}
}
