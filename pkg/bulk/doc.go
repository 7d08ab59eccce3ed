// Package bulk is the domain of a bulk import: the rows a client submits,
// their validation with user-facing messages, the nesting of debt accounts
// under parents, and the plan of what an import writes and reports.
//
// Nothing here does I/O: the store looks up what already exists and writes the
// plan, the worker drives the steps, and both are tested apart from this logic.
package bulk
