package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem in a configuration file, located by key and line.
type Error struct {
	File string
	Line int    // 0 when the key is not in the file (a default is wrong)
	Key  string // dotted path such as "network.known_peers[2]"
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// locator maps the keys of a parsed YAML document to their lines and back.
type locator struct {
	lines  map[string]int    // dotted key path → line
	byLine map[int]string    // line → the outermost key path on it
	byPos  map[[2]int]string // line, column of a key or value → its key path
}

func locate(doc *yaml.Node) locator {
	l := locator{lines: make(map[string]int), byLine: make(map[int]string), byPos: make(map[[2]int]string)}
	add := func(path string, n *yaml.Node) {
		l.lines[path] = n.Line
		if _, ok := l.byLine[n.Line]; !ok {
			l.byLine[n.Line] = path
		}
		l.byPos[[2]int{n.Line, n.Column}] = path
	}
	addValue := func(path string, n *yaml.Node) { l.byPos[[2]int{n.Line, n.Column}] = path }
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if path != "" {
					k = path + "." + k
				}
				add(k, n.Content[i])
				addValue(k, n.Content[i+1])
				walk(n.Content[i+1], k)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				k := fmt.Sprintf("%s[%d]", path, i)
				add(k, c)
				walk(c, k)
			}
		}
	}
	walk(doc, "")
	return l
}

func (l locator) line(key string) (int, bool) {
	line, ok := l.lines[key]
	return line, ok
}

var (
	// Our value types add the column (see typeError); yaml.v3 does not.
	linePrefix   = regexp.MustCompile(`^line (\d+): (?:column (\d+): )?(.*)$`)
	unknownField = regexp.MustCompile(`^field (\S+) not found in type`)
)

// explain turns a yaml.v3 decoding error into located Errors.
func (l locator) explain(file string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: %w", file, err)
	}
	errs := make([]error, 0, len(te.Errors))
	for _, s := range te.Errors {
		m := linePrefix.FindStringSubmatch(s)
		if m == nil {
			errs = append(errs, fmt.Errorf("%s: %s", file, s))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		e := &Error{File: file, Line: line, Key: l.byLine[line], Msg: m[3]}
		if col, err := strconv.Atoi(m[2]); err == nil {
			e.Key = l.byPos[[2]int{line, col}]
		}
		if f := unknownField.FindStringSubmatch(m[3]); f != nil {
			e.Key = l.keyNamed(f[1], line)
			e.Msg = "unknown key (see `asmtpd-cli default-config` for the valid ones)"
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// keyNamed finds the path of the key called name on line.
func (l locator) keyNamed(name string, line int) string {
	for path, at := range l.lines {
		if at == line && (path == name || strings.HasSuffix(path, "."+name)) {
			return path
		}
	}
	return name
}

// join locates validation errors.
func (l locator) join(file string, kes []keyError) error {
	errs := make([]error, len(kes))
	for i, ke := range kes {
		line, _ := l.line(ke.key)
		errs[i] = &Error{File: file, Line: line, Key: ke.key, Msg: ke.msg}
	}
	return errors.Join(errs...)
}
