package smtptest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
)

// Parsed is a Message's content, decoded for assertions.
type Parsed struct {
	Header  mail.Header
	Subject string // the Subject header with RFC 2047 encoded-words decoded
	Text    string // body of the text/plain part, "" if there is none
	HTML    string // body of the text/html part, "" if there is none
}

// Parse decodes m's header and its text/plain and text/html bodies, found at
// the top level or anywhere in a multipart tree (such as
// multipart/alternative) and undone from quoted-printable or base64. Bodies
// are returned in the charset they were sent in. A message without a
// Content-Type is text/plain.
//
// Parse fails the test with t.Fatal if the message is malformed, or if it has
// a part of another media type or two parts of the same one, since then Text
// and HTML would not say everything the message does.
func (m Message) Parse(t testing.TB) Parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("smtptest: read message: %v\n%s", err, m.Data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("smtptest: decode subject: %v", err)
	}
	bodies := map[string]string{}
	collectParts(t, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, bodies)
	return Parsed{Header: msg.Header, Subject: subject, Text: bodies["text/plain"], HTML: bodies["text/html"]}
}

// collectParts walks a MIME tree and stores every leaf's decoded body by
// media type.
func collectParts(t testing.TB, contentType, encoding string, body io.Reader, into map[string]string) {
	t.Helper()
	if contentType == "" {
		contentType = "text/plain" // RFC 2045, section 5.2
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatalf("smtptest: parse content type %q: %v", contentType, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("smtptest: next part of %s: %v", mediaType, err)
			}
			collectParts(t, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, into)
		}
	}
	if mediaType != "text/plain" && mediaType != "text/html" {
		t.Fatalf("smtptest: message has a %s part; Parse handles text/plain and text/html only", mediaType)
	}
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("smtptest: read %s part: %v", mediaType, err)
	}
	if _, dup := into[mediaType]; dup {
		t.Fatalf("smtptest: message has two %s parts", mediaType)
	}
	into[mediaType] = string(b)
}
