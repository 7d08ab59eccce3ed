package bulk

import (
	"strconv"
	"time"
)

// Mode says what an import does with records that exist already.
type Mode string

// Import modes.
const (
	// ModeCreate (the default, the Tratta API's behaviour) creates debt
	// accounts and reuses customers and locations as they are; an account
	// whose external id is taken fails.
	ModeCreate Mode = "create"
	// ModeUpsert updates the customers, locations and debt accounts it finds
	// by external id with the fields submitted, and creates the rest.
	ModeUpsert Mode = "upsert"
)

// Options are how one bulk is imported. They are chosen at submission,
// stored on the bulk, and given unchanged to every attempt of its import.
type Options struct {
	Mode Mode
	// Atomic writes nothing of the bulk if any object of any row fails.
	Atomic bool
	// ValidateOnly runs the whole import, database checks included, and
	// reports what it would do, without writing a record.
	ValidateOnly bool
	// Strict makes an unknown key anywhere in a row, and a key given twice
	// in one object, an error of the object that holds it.
	Strict bool
	// Today bounds dates: a date of birth must be before it.
	Today time.Time
}

// Query writes the options as the query parameters they are submitted with,
// in one canonical order: two submissions with equal options give equal
// strings (the idempotency of a retry compares them).
func (o Options) Query() string {
	mode := o.Mode
	if mode == "" {
		mode = ModeCreate
	}
	return "mode=" + string(mode) + "&atomic=" + strconv.FormatBool(o.Atomic) +
		"&validate_only=" + strconv.FormatBool(o.ValidateOnly) + "&strict=" + strconv.FormatBool(o.Strict)
}

// OptionError is a query parameter of a submission that is unknown or has a
// value that is not allowed.
type OptionError struct {
	Param   string
	Message string
}

func (e *OptionError) Error() string { return e.Message }

// ParseOptions reads the import options of a submission from the values of
// its query parameters, by name (OptionNames; the caller's query reader has
// refused unknown and repeated ones). A value out of its choices is an
// *OptionError naming the parameter. Today is left zero: the store sets the
// day the bulk is submitted.
func ParseOptions(values map[string]string) (Options, error) {
	o := Options{Mode: ModeCreate}
	for _, name := range OptionNames {
		v, given := values[name]
		if !given {
			continue
		}
		var err error
		switch name {
		case "mode":
			switch Mode(v) {
			case ModeCreate, ModeUpsert:
				o.Mode = Mode(v)
			default:
				err = &OptionError{name, "The mode parameter must be create or upsert."}
			}
		case "atomic":
			o.Atomic, err = boolOption(name, v)
		case "validate_only":
			o.ValidateOnly, err = boolOption(name, v)
		case "strict":
			o.Strict, err = boolOption(name, v)
		}
		if err != nil {
			return Options{}, err
		}
	}
	return o, nil
}

// OptionNames are the query parameters of the options, in the order
// messages list them.
var OptionNames = []string{"mode", "atomic", "validate_only", "strict"}

func boolOption(name, v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, &OptionError{name, "The " + name + " parameter must be true or false."}
}
