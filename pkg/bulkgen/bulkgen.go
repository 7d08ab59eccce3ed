// Package bulkgen generates realistic, deterministic bulk submissions for
// benchmarks and load tests: the same options always give the same rows.
//
// A generated bulk has customers with addresses and metadata, locations that
// many customers (and bulks) share, and per customer one parent debt account
// with the rest nested under it. A share of the rows can be made to fail on
// purpose, as real submissions do: rows with one realistic mistake (Invalid)
// and rows that repeat a row of an earlier bulk of the same run (Duplicates),
// whose debt accounts the service then reports as taken. Which rows those are
// is decided per bulk, so a benchmark knows exactly how many rows must fail
// without keeping earlier bulks around.
package bulkgen

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/bulkd/bulkd/pkg/bulk"
)

// Options shape a generated bulk. Bulks of one run share every option but
// Bulk; duplicates rely on that to regenerate the earlier rows they repeat.
type Options struct {
	Seed     uint64 // the same seed gives the same rows
	Rows     int    // customers, one per row
	Accounts int    // debt accounts per customer: one parent, the rest nested under it
	// Prefix makes external ids unique across runs (or across bulks generated
	// with Bulk left at 0): rows with different prefixes never collide.
	Prefix string
	// Locations is how many distinct locations the customers of a run share
	// (0: 1 per 10 rows of a bulk).
	Locations int
	// Bulk is the bulk's index in its run, from 0. Bulks of different indexes
	// have different rows and external ids.
	Bulk int
	// Invalid is the share of rows, 0 to 1, that carry one realistic mistake
	// failing the row (a malformed email, a missing external id, a negative
	// balance, an impossible date of birth, an unknown billing type).
	Invalid float64
	// Duplicates is the share of rows, 0 to 1, that repeat a valid row of an
	// earlier bulk of the run exactly, so its debt accounts are "taken"; the
	// duplicates of one bulk repeat different rows. The
	// first bulk (Bulk 0) has none: there is nothing earlier to repeat. Nor
	// do rows without debt accounts: a repeated customer is found, not taken.
	Duplicates float64
	// Changed is the share of rows, 0 to 1, given a second version for an
	// upsert to apply over the bulk generated without it: the customer's name
	// gains ChangedNameSuffix and every debt account's current_balance
	// ChangedBalanceCents. The rows are drawn per row, independently of the
	// other shares; invalid rows are never changed (which of their objects
	// fail would decide which changes apply), and a duplicate carries
	// exactly the change of the row it repeats.
	Changed float64
}

// The second version of a changed row (Options.Changed).
const (
	ChangedNameSuffix   = " II"
	ChangedBalanceCents = 100
)

// changeSalt draws the changed rows from a stream of their own: the same rows
// change whatever the other shares.
const changeSalt = 0xc4a6_0000_0000_0000

// IsChanged tells whether row i of bulk b carries the change of
// Options.Changed, should it be a valid row.
func (o Options) IsChanged(b, i int) bool {
	if o.Changed <= 0 {
		return false
	}
	r := rand.New(rand.NewPCG(o.Seed^changeSalt, rowStream(b, i)))
	return r.Float64() < o.Changed
}

// Kind is what a generated row is meant to do when imported.
type Kind uint8

// Kinds of rows.
const (
	Valid     Kind = iota // imports completely
	Invalid               // fails validation: one object carries a mistake
	Duplicate             // repeats a valid row of an earlier bulk: its debt accounts are taken
)

// String names the kind, for test and report messages.
func (k Kind) String() string {
	switch k {
	case Valid:
		return "valid"
	case Invalid:
		return "invalid"
	case Duplicate:
		return "duplicate"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "John"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen", "Backus"}
	cities     = []string{"Springfield", "Riverton", "Fairview", "Georgetown", "Salem", "Madison", "Clinton", "Franklin"}
	states     = []string{"CA", "TX", "NY", "FL", "IL", "OH", "WA", "GA"}
	streets    = []string{"Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm St", "Park Rd", "Lake Blvd", "Hill St"}
	sources    = []string{"origination", "transfer", "purchase", "referral"}
)

// Salts keep the random streams of rows, of a bulk's layout and of mistakes
// apart, so the content of a row never depends on which rows of its bulk fail.
const (
	rowSalt    = 0x5eed_0000_0000_0000
	layoutSalt = 0x1a70_0000_0000_0000
	spoilSalt  = 0xbad0_0000_0000_0000
)

// Body returns the JSON array of rows, ready to POST. It is what
// json.Marshal(Rows(o)) says, written directly: a load generator sharing the
// machine with the service must not spend the CPU that reflection would.
func Body(o Options) []byte {
	// About 1.2 KB a row with 3 accounts: size the buffer once.
	b := make([]byte, 1, o.Rows*(400+250*o.Accounts)+2)
	b[0] = '['
	o.eachRow(func(r *row) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = r.appendJSON(b)
	})
	return append(b, ']')
}

// Rows returns the rows as Go values.
func Rows(o Options) []map[string]any {
	rows := make([]map[string]any, 0, o.Rows)
	o.eachRow(func(r *row) { rows = append(rows, r.values()) })
	return rows
}

// eachRow generates the bulk's rows in order.
func (o Options) eachRow(f func(*row)) {
	l := o.layout()
	for i := range o.Rows {
		var r row
		switch l.kinds[i] {
		case Duplicate:
			src := l.sources[i]
			o.fill(&r, src.bulk, src.row)
		case Invalid:
			unchanged := o
			unchanged.Changed = 0
			unchanged.fill(&r, o.Bulk, i)
			r.spoil(rand.New(rand.NewPCG(o.Seed^spoilSalt, rowStream(o.Bulk, i))))
		default:
			o.fill(&r, o.Bulk, i)
		}
		f(&r)
	}
}

// Kinds tells what each row of the bulk is meant to do, without generating
// the rows.
func Kinds(o Options) []Kind {
	return o.layout().kinds
}

// Counts returns how many rows of the bulk are invalid and how many are
// duplicates: the rows its import must report failed.
func Counts(o Options) (invalid, duplicates int) {
	invalid = shareOf(o.Invalid, o.Rows)
	if o.Bulk > 0 && o.Accounts > 0 {
		duplicates = min(shareOf(o.Duplicates, o.Rows), o.Rows-invalid)
		if invalid == o.Rows {
			duplicates = 0
		}
	}
	return invalid, duplicates
}

// shareOf rounds share × n, clamped to 0..n.
func shareOf(share float64, n int) int {
	if share <= 0 || math.IsNaN(share) {
		return 0
	}
	return min(n, int(math.Round(share*float64(n))))
}

type rowRef struct{ bulk, row int }

type layout struct {
	kinds   []Kind
	sources map[int]rowRef // the row each duplicate repeats
}

// shuffle returns the bulk's rows in an order drawn from its layout stream:
// the first rows of it are invalid, the next ones duplicates, the rest valid.
func (o Options) shuffle(bulkIndex int) ([]int, *rand.Rand) {
	r := rand.New(rand.NewPCG(o.Seed^layoutSalt, uint64(bulkIndex)))
	return r.Perm(o.Rows), r
}

// layout decides which rows are invalid or duplicates, and which earlier row
// each duplicate repeats. It depends on (Seed, Bulk, Rows, shares) only.
func (o Options) layout() layout {
	l := layout{kinds: make([]Kind, o.Rows)}
	invalid, duplicates := Counts(o)
	if invalid == 0 && duplicates == 0 {
		return l
	}
	perm, r := o.shuffle(o.Bulk)
	for _, i := range perm[:invalid] {
		l.kinds[i] = Invalid
	}
	if duplicates == 0 {
		return l
	}
	l.sources = make(map[int]rowRef, duplicates)
	repeated := make(map[rowRef]bool, duplicates)
	for _, i := range perm[invalid : invalid+duplicates] {
		l.kinds[i] = Duplicate
		// Two duplicates of a bulk repeat two different rows, as far as a
		// few draws can tell: the second copy of a row in one bulk would be
		// taken even by an upsert.
		var src rowRef
		for try := 0; try == 0 || (repeated[src] && try < 32); try++ {
			earlier := o
			earlier.Bulk = r.IntN(o.Bulk)
			inv, dup := Counts(earlier)
			if inv+dup == o.Rows { // no valid row there; the first bulk always has some
				earlier.Bulk = 0
				inv, dup = Counts(earlier)
			}
			ePerm, _ := o.shuffle(earlier.Bulk)
			valid := ePerm[inv+dup:]
			src = rowRef{bulk: earlier.Bulk, row: valid[r.IntN(len(valid))]}
		}
		repeated[src] = true
		l.sources[i] = src
	}
	return l
}

// row is one generated row. Fields left empty are absent from the JSON.
type row struct {
	custExtID, name, email, phone, dob, ssn string
	line1, line2, city, state, postal       string
	segment                                 string
	score                                   int
	vip                                     bool
	locExtID, locName                       string
	accounts                                []account
}

type account struct {
	extID, parentExtID, number string
	balance, current           bulk.Money
	billingType                string
	portfolio, source          string
	priority                   int
	disputed                   bool
}

// fill generates row i of bulk b from its own random stream: the same row of
// the same bulk is the same wherever it is generated, which is what lets a
// duplicate repeat it exactly.
func (o Options) fill(r *row, b, i int) {
	rnd := rand.New(rand.NewPCG(o.Seed^rowSalt, rowStream(b, i)))
	locations := o.Locations
	if locations == 0 {
		locations = max(1, o.Rows/10)
	}
	id := strconv.Itoa(b) + "-" + strconv.Itoa(i)
	first, last := firstNames[rnd.IntN(len(firstNames))], lastNames[rnd.IntN(len(lastNames))]
	r.accounts = make([]account, o.Accounts)
	for a := range r.accounts {
		balance := bulk.Money(rnd.IntN(1_000_000))
		r.accounts[a] = account{
			extID:       o.Prefix + "acct-" + id + "-" + strconv.Itoa(a),
			number:      "AN" + pad(rnd.IntN(1e9), 10),
			balance:     balance,
			current:     bulk.Money(rnd.IntN(int(balance) + 1)), // part may be paid
			billingType: bulk.BillingTypes[rnd.IntN(len(bulk.BillingTypes))],
			portfolio:   "P" + strconv.Itoa(rnd.IntN(20)),
			priority:    rnd.IntN(5),
			source:      sources[rnd.IntN(len(sources))],
			disputed:    rnd.IntN(20) == 0,
		}
		if a > 0 {
			r.accounts[a].parentExtID = r.accounts[0].extID
		}
	}
	r.custExtID = o.Prefix + "cust-" + id
	r.name = first + " " + last
	r.email = first + "." + last + "." + id + "@example.com"
	r.phone = "+1-555-" + pad(rnd.IntN(1000), 3) + "-" + pad(rnd.IntN(10000), 4)
	r.dob = strconv.Itoa(1940+rnd.IntN(60)) + "-" + pad(1+rnd.IntN(12), 2) + "-" + pad(1+rnd.IntN(28), 2)
	r.ssn = pad(rnd.IntN(10000), 4)
	r.line1 = strconv.Itoa(1+rnd.IntN(9999)) + " " + streets[rnd.IntN(len(streets))]
	r.city = cities[rnd.IntN(len(cities))]
	r.state = states[rnd.IntN(len(states))]
	r.postal = pad(rnd.IntN(100000), 5)
	if rnd.IntN(4) == 0 {
		r.line2 = "Apt " + strconv.Itoa(1+rnd.IntN(400))
	}
	r.segment = "S" + strconv.Itoa(rnd.IntN(8))
	r.score = 300 + rnd.IntN(551)
	r.vip = rnd.IntN(10) == 0
	loc := rnd.IntN(locations)
	r.locExtID = o.Prefix + "loc-" + strconv.Itoa(loc)
	r.locName = cities[loc%len(cities)] + " office " + strconv.Itoa(loc)
	if o.IsChanged(b, i) {
		r.name += ChangedNameSuffix
		for a := range r.accounts {
			r.accounts[a].current += ChangedBalanceCents
		}
	}
}

// pad formats n with at least width digits, zero-padded.
func pad(n, width int) string {
	s := strconv.Itoa(n)
	for len(s) < width {
		s = "0" + s
	}
	return s
}

// rowStream numbers the random stream of row i of bulk b.
func rowStream(b, i int) uint64 { return uint64(b)<<32 | uint64(uint32(i)) }

// spoil puts one mistake of the kind real files carry into the row; each one
// fails the row's validation on its own.
func (r *row) spoil(rnd *rand.Rand) {
	mistakes := 3
	if len(r.accounts) > 0 {
		mistakes = 5
	}
	switch rnd.IntN(mistakes) {
	case 0: // a typo in the address
		r.email = strings.Replace(r.email, "@", "(at)", 1)
	case 1: // an export that lost a column
		r.custExtID = ""
	case 2: // an impossible date
		r.dob = "1985-02-30"
	case 3: // a refund booked as a debt
		r.accounts[rnd.IntN(len(r.accounts))].balance = -bulk.Money(1 + rnd.IntN(100_000))
	case 4: // a billing type from another system
		r.accounts[rnd.IntN(len(r.accounts))].billingType = "monthly"
	}
}

// values is the row as maps, the shape json.Marshal gives the same JSON for.
func (r *row) values() map[string]any {
	cust := map[string]any{
		"name": r.name, "email": r.email, "phone": r.phone, "date_of_birth": r.dob, "ssn_last4": r.ssn,
		"metadata": map[string]any{"segment": r.segment, "score": r.score, "vip": r.vip},
	}
	if r.custExtID != "" {
		cust["external_id"] = r.custExtID
	}
	addr := map[string]any{"line1": r.line1, "city": r.city, "state": r.state, "postal_code": r.postal, "country": "US", "is_primary": true}
	if r.line2 != "" {
		addr["line2"] = r.line2
	}
	cust["address"] = addr
	accounts := make([]any, len(r.accounts))
	for i, a := range r.accounts {
		m := map[string]any{
			"external_id": a.extID, "external_account_number": a.number,
			"balance": json.Number(money(a.balance)), "current_balance": json.Number(money(a.current)),
			"billing_type": []string{a.billingType},
			"metadata":     map[string]any{"portfolio": a.portfolio, "priority": a.priority, "source": a.source, "disputed": a.disputed},
		}
		if a.parentExtID != "" {
			m["parent_external_id"] = a.parentExtID
		}
		accounts[i] = m
	}
	return map[string]any{
		"customer":      cust,
		"location":      map[string]any{"external_id": r.locExtID, "name": r.locName},
		"debt_accounts": accounts,
	}
}

// appendJSON writes the row as JSON, keys in the order json.Marshal sorts
// the maps of values.
func (r *row) appendJSON(b []byte) []byte {
	b = append(b, `{"customer":{"address":{"city":`...)
	b = appendString(b, r.city)
	b = append(b, `,"country":"US","is_primary":true,"line1":`...)
	b = appendString(b, r.line1)
	if r.line2 != "" {
		b = append(b, `,"line2":`...)
		b = appendString(b, r.line2)
	}
	b = append(b, `,"postal_code":`...)
	b = appendString(b, r.postal)
	b = append(b, `,"state":`...)
	b = appendString(b, r.state)
	b = append(b, `},"date_of_birth":`...)
	b = appendString(b, r.dob)
	b = append(b, `,"email":`...)
	b = appendString(b, r.email)
	if r.custExtID != "" {
		b = append(b, `,"external_id":`...)
		b = appendString(b, r.custExtID)
	}
	b = append(b, `,"metadata":{"score":`...)
	b = strconv.AppendInt(b, int64(r.score), 10)
	b = append(b, `,"segment":`...)
	b = appendString(b, r.segment)
	b = append(b, `,"vip":`...)
	b = strconv.AppendBool(b, r.vip)
	b = append(b, `},"name":`...)
	b = appendString(b, r.name)
	b = append(b, `,"phone":`...)
	b = appendString(b, r.phone)
	b = append(b, `,"ssn_last4":`...)
	b = appendString(b, r.ssn)
	b = append(b, `},"debt_accounts":[`...)
	for i, a := range r.accounts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"balance":`...)
		b = append(b, money(a.balance)...)
		b = append(b, `,"billing_type":[`...)
		b = appendString(b, a.billingType)
		b = append(b, `],"current_balance":`...)
		b = append(b, money(a.current)...)
		b = append(b, `,"external_account_number":`...)
		b = appendString(b, a.number)
		b = append(b, `,"external_id":`...)
		b = appendString(b, a.extID)
		b = append(b, `,"metadata":{"disputed":`...)
		b = strconv.AppendBool(b, a.disputed)
		b = append(b, `,"portfolio":`...)
		b = appendString(b, a.portfolio)
		b = append(b, `,"priority":`...)
		b = strconv.AppendInt(b, int64(a.priority), 10)
		b = append(b, `,"source":`...)
		b = appendString(b, a.source)
		b = append(b, '}')
		if a.parentExtID != "" {
			b = append(b, `,"parent_external_id":`...)
			b = appendString(b, a.parentExtID)
		}
		b = append(b, '}')
	}
	b = append(b, `],"location":{"external_id":`...)
	b = appendString(b, r.locExtID)
	b = append(b, `,"name":`...)
	b = appendString(b, r.locName)
	return append(b, `}}`...)
}

// money formats cents as a JSON number with two decimals.
func money(m bulk.Money) string {
	if m < 0 {
		return "-" + (-m).String()
	}
	return m.String()
}

// appendString writes s as a JSON string. Generated text is plain ASCII; only
// a caller's Prefix could need escaping, which json.Marshal then does.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// ChangedRecords lists the external ids of the customers and debt accounts
// that the bulk's change (Options.Changed) touches: those of its valid rows
// that IsChanged picks. Duplicates repeat rows of earlier bulks, whose own
// lists name them.
func ChangedRecords(o Options) (customers, debtAccounts []string) {
	kinds := Kinds(o)
	for i := range o.Rows {
		if kinds[i] != Valid || !o.IsChanged(o.Bulk, i) {
			continue
		}
		id := strconv.Itoa(o.Bulk) + "-" + strconv.Itoa(i)
		customers = append(customers, o.Prefix+"cust-"+id)
		for a := range o.Accounts {
			debtAccounts = append(debtAccounts, o.Prefix+"acct-"+id+"-"+strconv.Itoa(a))
		}
	}
	return customers, debtAccounts
}
