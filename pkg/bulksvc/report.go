package bulksvc

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
)

// ErrStop, returned by an ErrorLines callback, ends the reading early
// without an error.
var ErrStop = errors.New("bulksvc: stop")

// ErrorLines calls fn with each message of the organization's bulk's errors
// report, in row order, reading ErrorsPageSize failed rows at a time so that
// a large report is never held whole. A row whose stored report cannot be
// read is one bulk.UnreadableLine. fn's error ends the reading and is
// returned, unless it is ErrStop.
func (s *Service) ErrorLines(ctx context.Context, orgID, id uuid.UUID, fn func(bulk.ErrorLine) error) error {
	for after := 0; ; {
		rows, err := s.store.BulkErrors(ctx, orgID, id, after, ErrorsPageSize)
		if err != nil {
			return err
		}
		for _, r := range rows {
			var report bulk.RowErrors
			lines := []bulk.ErrorLine{bulk.UnreadableLine(r.Row)}
			if sendable(r.Errors) && json.Unmarshal(r.Errors, &report) == nil {
				lines = report.Lines(r.Row)
			}
			for _, l := range lines {
				if err := fn(l); errors.Is(err, ErrStop) {
					return nil
				} else if err != nil {
					return err
				}
			}
		}
		if len(rows) < ErrorsPageSize {
			return nil
		}
		after = rows[len(rows)-1].Row
	}
}

// FirstErrorLines returns the first n messages of the bulk's errors report,
// and whether there are more.
func (s *Service) FirstErrorLines(ctx context.Context, orgID, id uuid.UUID, n int) (lines []bulk.ErrorLine, more bool, err error) {
	err = s.ErrorLines(ctx, orgID, id, func(l bulk.ErrorLine) error {
		if len(lines) == n {
			more = true
			return ErrStop
		}
		lines = append(lines, l)
		return nil
	})
	return lines, more, err
}
