// Command bulkctl imports files of any size into bulkd and brings back
// what failed: it splits a JSON array, an NDJSON file or a CSV export into
// bulks of at most 1000 rows, submits them concurrently, survives
// interruptions (run the same command again), shows progress, and writes
// the failed rows back in the input's own format, ready to fix and
// resubmit.
//
//	bulkctl submit FILE… [--wait] [--rows 1000] [--concurrency 4] [--mode upsert] [--atomic] [--validate-only] [--strict]
//	bulkctl status ID | list [--status S] | cancel ID | results ID
//	bulkctl errors ID… | --input FILE [--format table|json|csv] [-o FILE] [--resubmit-file FILE]
//
// It finds bulkd at BULKD_URL with the key BULKD_API_KEY (or --url and
// --api-key). Exit status: 0 when every row imported, 2 when some rows
// failed, 1 on any other error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/bulkd/bulkd/pkg/client"
)

const usage = `usage: bulkctl <command> [flags]

commands:
  submit FILE…        split files (JSON array, NDJSON, CSV) into bulks and submit them; run it again to resume
  status ID           show a bulk
  list                list bulks, newest first (--status pending,failed --limit N)
  cancel ID           cancel a pending or processing bulk
  results ID          every row's result (--format table|json)
  errors ID…          the failed rows (--format table|json|csv, -o FILE); --input FILE for every bulk of a
                      submitted file; --resubmit-file FILE writes the failed rows in the input's own format

configuration: BULKD_URL and BULKD_API_KEY, or --url and --api-key on any command
exit status: 0 every row imported, 2 some rows failed, 1 any other error
`

// Exit statuses.
const (
	exitOK         = 0
	exitError      = 1
	exitRowsFailed = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv,
		terminal: isatty.IsTerminal(os.Stderr.Fd()), progressEvery: 5 * time.Second}
	os.Exit(c.run(ctx, os.Args[1:]))
}

// cli is one run of the command, with what it writes to.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	terminal       bool          // stderr is a terminal: draw progress bars
	progressEvery  time.Duration // else, how often a progress line is written
	// clientConfig adds to the client's configuration (tests shorten the
	// backoff); nil adds nothing.
	clientConfig func(*client.Config)
}

// run runs the command args and returns its exit status.
func (c *cli) run(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(c.stdout, usage)
		return exitOK
	}
	commands := map[string]func(context.Context, []string) (int, error){
		"submit": c.submit, "status": c.status, "list": c.list, "cancel": c.cancel, "results": c.results, "errors": c.errorsCmd,
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(c.stderr, "bulkctl: unknown command %q\n\n%s", args[0], usage)
		return exitError
	}
	code, err := cmd(ctx, args[1:])
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(c.stderr, "bulkctl:", err)
		}
		if code == exitOK {
			code = exitError
		}
	}
	return code
}

// connection holds the flags every command takes.
type connection struct {
	url, apiKey string
}

func (c *cli) flags(name string) (*flag.FlagSet, *connection) {
	fs := flag.NewFlagSet("bulkctl "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	conn := &connection{}
	fs.StringVar(&conn.url, "url", "", "bulkd's URL (default $BULKD_URL)")
	fs.StringVar(&conn.apiKey, "api-key", "", "the API key (default $BULKD_API_KEY; prefer the variable, which stays out of ps)")
	return fs, conn
}

// client is a client of the bulkd the flags or the environment name.
func (c *cli) client(conn *connection) (*client.Client, error) {
	cfg := client.Config{BaseURL: conn.url, APIKey: conn.apiKey, UserAgent: "bulkctl", MaxAttempts: 10}
	if cfg.BaseURL == "" {
		cfg.BaseURL = c.getenv("BULKD_URL")
	}
	if cfg.APIKey == "" {
		cfg.APIKey = c.getenv("BULKD_API_KEY")
	}
	switch {
	case cfg.BaseURL == "":
		return nil, errors.New("no bulkd to talk to: set BULKD_URL (or --url), such as http://localhost:8080")
	case cfg.APIKey == "":
		return nil, errors.New("no API key: set BULKD_API_KEY (or --api-key)")
	}
	if c.clientConfig != nil {
		c.clientConfig(&cfg)
	}
	return client.New(cfg)
}

// parse parses args with fs, flags and positional arguments in any order
// (bulkctl submit big.csv --wait), and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// oneBulk parses the flags of a command that takes one bulk id and
// returns a client and the id.
func (c *cli) oneBulk(fs *flag.FlagSet, conn *connection, args []string) (*client.Client, string, error) {
	args, err := parse(fs, args)
	if err != nil {
		return nil, "", err
	}
	cmd := strings.TrimPrefix(fs.Name(), "bulkctl ")
	if len(args) != 1 || strings.TrimSpace(args[0]) == "" {
		return nil, "", fmt.Errorf("%s takes one bulk id: bulkctl %s ID", cmd, cmd)
	}
	cl, err := c.client(conn)
	return cl, args[0], err
}
