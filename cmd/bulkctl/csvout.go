package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// writeCSVRows writes rows (JSON, as submitted) as a CSV input: a header of
// the columns the rows use, then one line per debt account of each row
// (parents first), or one line for a row without any.
func writeCSVRows(w io.Writer, payloads [][]byte) error {
	rows := make([]csvSource, 0, len(payloads))
	used := map[string]bool{}
	for _, p := range payloads {
		r, err := decodeCSVSource(p)
		if err != nil {
			return err
		}
		r.columns(used)
		rows = append(rows, r)
	}
	var header []string
	for _, name := range csvColumns {
		if used[name] || name == "customer.external_id" {
			header = append(header, name)
		}
	}
	var meta []string
	for name := range used {
		if strings.HasPrefix(name, customerMetadata) || strings.HasPrefix(name, accountMetadata) {
			meta = append(meta, name)
		}
	}
	slices.Sort(meta)
	header = append(header, meta...)
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, r := range rows {
		for _, line := range r.lines(header) {
			if err := cw.Write(line); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvSource is a row decoded to be written as CSV lines.
type csvSource struct {
	customer, location map[string]any
	accounts           []map[string]any
}

func decodeCSVSource(payload []byte) (csvSource, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v struct {
		Customer           map[string]any   `json:"customer"`
		Location           map[string]any   `json:"location"`
		ParentDebtAccounts []map[string]any `json:"parent_debt_accounts"`
		DebtAccounts       []map[string]any `json:"debt_accounts"`
	}
	if err := dec.Decode(&v); err != nil {
		return csvSource{}, fmt.Errorf("a failed row cannot be written as CSV (%v): write it as JSON or NDJSON", err)
	}
	return csvSource{customer: v.Customer, location: v.Location, accounts: append(v.ParentDebtAccounts, v.DebtAccounts...)}, nil
}

// columns adds the names of the columns the row has values for.
func (r csvSource) columns(used map[string]bool) {
	add := func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok && (k == "address" || k == "metadata") {
				for sk := range sub {
					used[prefix+k+"."+sk] = true
				}
				continue
			}
			used[prefix+k] = true
		}
	}
	add("customer.", r.customer)
	add("location.", r.location)
	for _, a := range r.accounts {
		add("debt_account.", a)
	}
}

// lines writes the row's lines under header.
func (r csvSource) lines(header []string) [][]string {
	accounts := r.accounts
	if len(accounts) == 0 {
		accounts = []map[string]any{nil}
	}
	out := make([][]string, 0, len(accounts))
	for _, a := range accounts {
		line := make([]string, len(header))
		for i, name := range header {
			object, path, _ := strings.Cut(name, ".")
			var m map[string]any
			switch object {
			case "customer":
				m = r.customer
			case "location":
				m = r.location
			case "debt_account":
				m = a
			}
			line[i] = cell(lookup(m, path))
		}
		out = append(out, line)
	}
	return out
}

// lookup is the value at a dotted path of m: "address.city", "metadata.k"
// (a metadata key may itself hold dots).
func lookup(m map[string]any, path string) any {
	if v, ok := m[path]; ok {
		return v
	}
	head, rest, ok := strings.Cut(path, ".")
	if !ok {
		return nil
	}
	sub, _ := m[head].(map[string]any)
	return sub[rest]
}

// cell writes a JSON value as a CSV cell, as the CSV reader reads it back.
func cell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "true"
		}
		return "false"
	case []any:
		items := make([]string, len(v))
		for i, item := range v {
			items[i] = cell(item)
		}
		return strings.Join(items, "|")
	}
	b, _ := json.Marshal(v)
	return string(b)
}
