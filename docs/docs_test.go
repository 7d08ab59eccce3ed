// Package docs_test keeps the documents honest about the code: a newcomer
// follows architecture.md's table to a file and a function, so every one it
// names must exist.
package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	code       = regexp.MustCompile("`([^`]+)`")
	identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// TestArchitectureNamesExist checks each row of "Where each behaviour
// lives": a path (file, folder or glob) must exist, and a name after it must
// be declared in that file (a func, method, type, var or const).
func TestArchitectureNamesExist(t *testing.T) {
	doc, err := os.ReadFile("architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "## Where each behaviour lives")
	if !ok {
		t.Fatal(`architecture.md has no "Where each behaviour lives" section`)
	}
	rows := 0
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || strings.HasPrefix(line, "| behaviour") || strings.HasPrefix(line, "| ---") {
			continue
		}
		rows++
		var file string // the Go file names refer to; "" after a folder
		dir := ""       // the folder a bare file name is in
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			tok := m[1]
			switch {
			case strings.Contains(tok, "/"):
				path := filepath.Join("..", tok)
				if strings.ContainsAny(tok, "*") {
					if found, _ := filepath.Glob(path); len(found) == 0 {
						t.Errorf("%s: %s matches nothing", cells[1], tok)
					}
					file = ""
					continue
				}
				st, err := os.Stat(path)
				if err != nil {
					t.Errorf("%s: %s does not exist", cells[1], tok)
					file = ""
					continue
				}
				if st.IsDir() {
					file, dir = "", path
				} else {
					file, dir = path, filepath.Dir(path)
				}
			case strings.HasSuffix(tok, ".go") && dir != "":
				file = filepath.Join(dir, tok)
				if _, err := os.Stat(file); err != nil {
					t.Errorf("%s: %s does not exist", cells[1], file)
					file = ""
				}
			case file != "" && strings.HasSuffix(file, ".go"):
				for _, name := range strings.FieldsFunc(tok, func(r rune) bool { return r == ',' || r == ' ' || r == '(' || r == ')' }) {
					if identifier.MatchString(name) && !declares(t, file, name) {
						t.Errorf("%s: %s is not declared in %s", cells[1], name, file)
					}
				}
			}
		}
	}
	if rows < 40 {
		t.Fatalf("read %d rows of the table; want it whole", rows)
	}
}

func declares(t *testing.T, file, name string) bool {
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// A func or method, a type, var or const, or one inside a ( ) block.
	decl := regexp.MustCompile(`(?m)^(func (\([^)]*\) )?` + name + `[\[(]|(type|var|const) ` + name + `\b|\t` + name + `\s+(=|[A-Za-z*\[]))`)
	return decl.Match(src)
}

// TestArchitectureListsEveryPackage checks that the Packages section names
// every folder of cmd/ and pkg/, so that a new package is described where a
// newcomer looks for it.
func TestArchitectureListsEveryPackage(t *testing.T) {
	doc, err := os.ReadFile("architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, packages, _ := strings.Cut(string(doc), "## Packages")
	packages, _, _ = strings.Cut(packages, "\n## ")
	for _, parent := range []string{"cmd", "pkg"} {
		entries, err := os.ReadDir(filepath.Join("..", parent))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if name := parent + "/" + e.Name() + "/"; e.IsDir() && !strings.Contains(packages, name) {
				t.Errorf("architecture.md's Packages section does not name %s", name)
			}
		}
	}
}
