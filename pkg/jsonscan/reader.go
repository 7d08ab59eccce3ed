package jsonscan

import (
	"encoding/json"
	"errors"
	"io"
)

// Errors of an ArrayReader about what the stream holds. Other errors are
// those of the underlying reader (a body too large, a dropped connection),
// returned as they are.
var (
	// ErrSyntax is a stream that is not JSON, or that ends inside it.
	ErrSyntax = errors.New("jsonscan: not valid JSON")
	// ErrNotArray is a stream whose value is not an array.
	ErrNotArray = errors.New("jsonscan: not a JSON array")
)

// Blocks grow from firstBlockSize to maxBlockSize, so that a small stream
// costs little and a large one is read in few pieces without much left unused
// at the end of the last.
const (
	firstBlockSize = 4 << 10
	maxBlockSize   = 64 << 10
)

// ArrayReader reads one JSON array from a stream, element by element, and
// answers as encoding/json's Decoder does when the array is read with Token,
// More and Decode into a json.RawMessage, then Token again for the closing
// bracket and for the end of the stream: the same streams succeed, with the
// same elements, and where the Decoder gives a syntax error ArrayReader gives
// ErrSyntax, where it gives the reader's error so does ArrayReader. It reads
// the stream into blocks and returns each element as a slice of one, so a
// stream is held once, however large.
//
// Call Begin, then Next while More, then End.
type ArrayReader struct {
	r     io.Reader
	block []byte // bytes read into the current block
	pos   int    // the next byte of block to scan
	err   error  // the error that ended reading, io.EOF at the end of the stream
	n     int    // elements read so far
}

// NewArrayReader returns an ArrayReader of r.
func NewArrayReader(r io.Reader) *ArrayReader { return &ArrayReader{r: r} }

// Begin reads the opening bracket. A stream that holds another value is
// ErrNotArray: an object at once, whatever follows its brace; any other value
// once read, since a broken one is ErrSyntax.
func (in *ArrayReader) Begin() error {
	c, err := in.peek()
	if err != nil {
		return syntaxOr(err)
	}
	switch c {
	case '[':
		in.pos++
		return nil
	case '{':
		return ErrNotArray
	}
	if _, err := in.value(); err != nil {
		return err
	}
	return ErrNotArray
}

// More tells whether an element may follow: false at a closing bracket or
// brace and when the stream ended or failed, which End then reports.
func (in *ArrayReader) More() bool {
	c, err := in.peek()
	return err == nil && c != ']' && c != '}'
}

// Next reads the next element, and the comma before it if it is not the
// first. The element has its own capacity, so that appending to it cannot
// overwrite what follows it.
func (in *ArrayReader) Next() (json.RawMessage, error) {
	if in.n > 0 {
		c, err := in.peek()
		if err != nil {
			return nil, syntaxOr(err)
		}
		if c != ',' {
			return nil, ErrSyntax
		}
		in.pos++
	}
	v, err := in.value()
	if err != nil {
		return nil, err
	}
	in.n++
	return v, nil
}

// End reads the closing bracket and checks that nothing but white space
// follows it.
func (in *ArrayReader) End() error {
	if c, err := in.peek(); err != nil || c != ']' {
		if err != nil {
			return syntaxOr(err)
		}
		return ErrSyntax
	}
	in.pos++

	switch c, err := in.peek(); {
	case err == io.EOF:
		return nil
	case err != nil:
		return syntaxOr(err)
	case c == '{' || c == '[':
		return ErrSyntax // something after the array
	default:
		// Another value after the array; only a read error while reading it
		// changes the answer, as it does for encoding/json.
		if _, err := in.value(); err != nil && !errors.Is(err, ErrSyntax) {
			return err
		}
		return ErrSyntax
	}
}

// syntaxOr maps an end of the stream in the middle of the JSON to ErrSyntax
// and leaves the reader's errors for the caller.
func syntaxOr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrSyntax
	}
	return err
}

// peek returns the next byte that is not white space, without consuming it.
func (in *ArrayReader) peek() (byte, error) {
	for {
		if in.pos = skipSpace(in.block, in.pos); in.pos < len(in.block) {
			return in.block[in.pos], nil
		}
		if in.err != nil {
			return 0, in.err
		}
		in.fill()
	}
}

// value reads the JSON value at the next byte that is not white space and
// returns it as a slice of the block, of its own capacity.
func (in *ArrayReader) value() (json.RawMessage, error) {
	if _, err := in.peek(); err != nil {
		return nil, syntaxOr(err)
	}
	for {
		data := in.block[in.pos:]
		end, res := scanValue(data, in.err == io.EOF)
		if res == scanOK && end == len(data) && data[0] != '{' && data[0] != '[' && in.err != io.EOF {
			// encoding/json takes a string, number or literal only once it
			// has seen the byte after it, or the end of the stream.
			res = scanTruncated
		}
		switch res {
		case scanOK:
			in.pos += end
			return data[:end:end], nil
		case scanInvalid:
			return nil, ErrSyntax
		}
		if in.err != nil {
			return nil, syntaxOr(in.err)
		}
		in.fill()
	}
}

// fill reads more of the stream. The block is filled up, so that a value too
// long for one read is scanned again only after it has at least doubled; a
// full block is replaced by a new one, into which the unscanned bytes move.
func (in *ArrayReader) fill() {
	if len(in.block) == cap(in.block) {
		rest := in.block[in.pos:]
		size := min(2*cap(in.block), maxBlockSize)
		size = max(size, firstBlockSize, 2*len(rest))
		block := make([]byte, len(rest), size)
		copy(block, rest)
		in.block, in.pos = block, 0
	}
	for len(in.block) < cap(in.block) && in.err == nil {
		var n int
		n, in.err = in.r.Read(in.block[len(in.block):cap(in.block)])
		in.block = in.block[:len(in.block)+n]
	}
}
