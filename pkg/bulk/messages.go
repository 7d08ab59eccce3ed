package bulk

import (
	"fmt"
	"strings"
)

// Messages holds the user-facing messages of one submitted object, keyed by
// field name ("email", "address.city", "metadata.color").
type Messages map[string][]string

// add records msg under field, unless the object has MaxMessagesPerObject
// messages already: then one last message says there are more, so that an
// object's report stays bounded whatever it holds.
func (m Messages) add(field, msg string) {
	n := 0
	for _, msgs := range m {
		n += len(msgs)
	}
	switch {
	case n < MaxMessagesPerObject:
		m[field] = append(m[field], msg)
	case n == MaxMessagesPerObject:
		m["*"] = append(m["*"], MsgMoreProblems)
	}
}

// Messages shown to clients. They follow the wording of the Tratta API, which
// bulkd is compatible with ("The external id has already been taken.").
const (
	MsgTaken             = "The external id has already been taken."
	MsgMoreProblems      = "The object has more problems than are listed here."
	MsgInvalidParent     = "The selected parent external id is invalid."
	MsgParentNested      = "The selected parent external id names a debt account that has a parent itself; only one level of nesting is allowed."
	MsgParentNotAllowed  = "The parent external id field is not allowed on parent debt accounts."
	MsgParentFailed      = "The debt account was not saved because its parent debt account failed."
	MsgCustomerFailed    = "The debt account was not saved because its customer failed."
	MsgLocationFailed    = "The customer was not saved because its location failed."
	MsgOtherCustomer     = "The debt account belongs to another customer."
	MsgHasChildren       = "The debt account has debt accounts nested under it, so it cannot be nested itself; only one level of nesting is allowed."
	MsgRowNotObject      = "The row must be an object with customer, location and debt_accounts."
	MsgEmail             = "The email field must be a valid email address."
	MsgBillingTypeChoice = "The selected billing type is invalid."
)

// Label turns a field path into the words of a message: "external_id" →
// "external id", "address.postal_code" → "address.postal code".
func Label(field string) string {
	return strings.ReplaceAll(field, "_", " ")
}

// MsgExtraneous is the message of a key that no field of its object names,
// where unknown keys are refused (a strict import, the records API): the
// JSON pointer of the object (RFC 6901, URI fragment form: "#/0/customer",
// "#" for a whole document) and the key.
func MsgExtraneous(pointer, key string) string {
	return pointer + ": extraneous key [" + key + "] is not permitted"
}

// requiredMessages are the "required" messages of the fields every failed
// object may carry, made once: a bulk of 200 000 empty accounts would
// otherwise format 600 000 copies of three sentences.
var requiredMessages = func() map[string]string {
	m := map[string]string{}
	for _, f := range []string{"customer", "location", "external_id", "name", "balance", "billing_type"} {
		m[f] = fmt.Sprintf("The %s field is required.", Label(f))
	}
	return m
}()

func msgRequired(field string) string {
	if msg, ok := requiredMessages[field]; ok {
		return msg
	}
	return fmt.Sprintf("The %s field is required.", Label(field))
}

func msgString(field string) string {
	return fmt.Sprintf("The %s field must be a string.", Label(field))
}

func msgMaxChars(field string, n int) string {
	return fmt.Sprintf("The %s field must not be greater than %d characters.", Label(field), n)
}

func msgNoNUL(field string) string {
	return fmt.Sprintf("The %s field must not contain NUL characters.", Label(field))
}

func msgObject(field string) string {
	return fmt.Sprintf("The %s field must be an object.", Label(field))
}

func msgList(field string) string {
	return fmt.Sprintf("The %s field must be a list.", Label(field))
}

func msgBoolean(field string) string {
	return fmt.Sprintf("The %s field must be true or false.", Label(field))
}
