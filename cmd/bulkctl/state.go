package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
)

// state is what a submission of one input has done, kept in a small file
// beside it so that the same command run again after a crash, a kill or a
// network failure submits only the bulks not accepted yet. Each bulk's
// Idempotency-Key is derived from the input's content and the bulk's index,
// so a bulk whose answer was lost before it was written here is answered
// by the server with the bulk it made, never made twice.
type state struct {
	Input   string      `json:"input"`
	SHA256  string      `json:"sha256"` // of the input's content
	Format  string      `json:"format"`
	Run     string      `json:"run"` // the options that shape the bulks: another run is another state
	Rows    int         `json:"rows"`
	Bulks   int         `json:"bulks"`
	Entries []bulkEntry `json:"accepted"`

	path string
	mu   sync.Mutex
}

// bulkEntry is one accepted bulk of the input.
type bulkEntry struct {
	Index     int    `json:"index"` // from 0, in the input's order
	BulkID    string `json:"bulk_id"`
	Rows      int    `json:"rows"`
	FirstLine int    `json:"first_line"`
}

// statePath is where the state of input is kept: named, or beside it.
func statePath(input, named string) string {
	if named != "" {
		return named
	}
	return input + ".bulkctl.json"
}

// loadState reads the state at path, or starts one when there is none.
// A state of another content or other options is refused: resuming it
// would submit other bulks under its keys.
func loadState(path string, fresh *state) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		fresh.path = path
		return fresh, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state file %s is not one bulkctl wrote (%v); remove it, or name another with --state", path, err)
	}
	switch {
	case s.SHA256 != fresh.SHA256:
		return nil, fmt.Errorf("state file %s is of another version of %s (its content has changed since); remove it to submit this one, or name another with --state",
			path, fresh.Input)
	case s.Run != fresh.Run:
		return nil, fmt.Errorf("state file %s is of a run with other options (%s); remove it to submit again with these, or name another with --state",
			path, s.Run)
	}
	s.path = path
	return &s, nil
}

// accepted tells the bulk id of an index accepted already.
func (s *state) accepted(index int) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.Entries {
		if e.Index == index {
			return e.BulkID, true
		}
	}
	return "", false
}

// accept records an accepted bulk and writes the file at once (whole, then
// renamed over the old one, so that a kill leaves one or the other).
func (s *state) accept(e bulkEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Entries = append(s.Entries, e)
	sort.Slice(s.Entries, func(i, j int) bool { return s.Entries[i].Index < s.Entries[j].Index })
	return s.save()
}

func (s *state) save() error {
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".*")
	if err != nil {
		return fmt.Errorf("state file: %w (name a writable place with --state)", err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// entries is a copy of the accepted bulks, in index order.
func (s *state) entries() []bulkEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bulkEntry(nil), s.Entries...)
}

// idempotencyKey is bulk index's key: the same input, options and index
// always give the same key, so the server recognises a bulk it has.
func (s *state) idempotencyKey(index int) string {
	h := sha256.Sum256([]byte(s.SHA256 + "\n" + s.Run))
	return "bulkctl-" + hex.EncodeToString(h[:16]) + "-" + strconv.Itoa(index)
}
