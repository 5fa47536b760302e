// Command ollama_render reads Modelfiles the way Ollama does and renders their TEMPLATE for chats, so tests can
// compare Ollama's prompt with Tunery's. It follows Ollama's parser/parser.go (the Modelfile state machine, quoting
// without escapes, runes Go finds unprintable dropped), server/routes.go (SYSTEM prepended as a system message when
// the chat has none) and template/template.go (collated messages, text/template with missingkey=zero, the
// .Messages form). Standard library only.
//
// stdin: {"cases": [{"modelfile": PATH, "messages": [{"role": "...", "content": "..."}] or null}]}
// stdout: [{"commands": [{"name": "...", "args": "..."}], "prompt": "...", "error": "..."}]
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/template"
)

type Command struct {
	Name string `json:"name"`
	Args string `json:"args"`
}

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type input struct {
	Cases []struct {
		Modelfile string     `json:"modelfile"`
		Messages  []*Message `json:"messages"`
	} `json:"cases"`
}

type result struct {
	Commands []Command `json:"commands"`
	Prompt   string    `json:"prompt"`
	Error    string    `json:"error"`
}

type state int

const (
	stNil state = iota
	stName
	stValue
	stParameter
	stMessage
	stComment
)

var commands = map[string]bool{
	"from": true, "license": true, "template": true, "system": true, "adapter": true, "draft": true,
	"renderer": true, "parser": true, "parameter": true, "message": true, "requires": true,
}

func isSpace(r rune) bool   { return r == ' ' || r == '\t' }
func isNewline(r rune) bool { return r == '\r' || r == '\n' }
func isAlpha(r rune) bool   { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
func isDigit(r rune) bool   { return r >= '0' && r <= '9' }

// next is the state after rune r in state s, and the rune to keep (0: none).
func next(r rune, s state) (state, rune, error) {
	switch s {
	case stNil:
		switch {
		case r == '#':
			return stComment, 0, nil
		case isSpace(r), isNewline(r):
			return stNil, 0, nil
		}
		return stName, r, nil
	case stName:
		switch {
		case isAlpha(r):
			return stName, r, nil
		case isSpace(r):
			return stValue, 0, nil
		}
		return stNil, 0, errors.New("invalid command")
	case stValue:
		if isNewline(r) || isSpace(r) {
			return stNil, r, nil
		}
		return stValue, r, nil
	case stParameter:
		switch {
		case isAlpha(r), isDigit(r), r == '_':
			return stParameter, r, nil
		case isSpace(r):
			return stValue, 0, nil
		}
		return stNil, 0, io.ErrUnexpectedEOF
	case stMessage:
		switch {
		case isAlpha(r):
			return stMessage, r, nil
		case isSpace(r):
			return stValue, 0, nil
		}
		return stNil, 0, io.ErrUnexpectedEOF
	case stComment:
		if isNewline(r) {
			return stNil, 0, nil
		}
		return stComment, 0, nil
	}
	return stNil, 0, errors.New("bad state")
}

// unquote strips """...""" or "..." (there are no escapes); false while the quote is still open.
func unquote(s string) (string, bool) {
	if strings.HasPrefix(s, `"""`) {
		if len(s) >= 6 && strings.HasSuffix(s, `"""`) {
			return s[3 : len(s)-3], true
		}
		return "", false
	}
	if strings.HasPrefix(s, `"`) {
		if len(s) >= 2 && strings.HasSuffix(s, `"`) {
			return s[1 : len(s)-1], true
		}
		return "", false
	}
	return s, true
}

func parse(r io.Reader) ([]Command, error) {
	var cmds []Command
	var cmd Command
	var buf strings.Builder
	var role string
	cur := stNil
	line := 1
	br := bufio.NewReader(r)
	first := true
	for {
		ch, _, err := br.ReadRune()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		if first && ch == '\uFEFF' { // a byte order mark is ignored
			first = false
			continue
		}
		first = false
		if isNewline(ch) {
			line++
		}
		nxt, keep, err := next(ch, cur)
		if err != nil {
			return nil, fmt.Errorf("(line %d): %w", line, err)
		}
		if nxt != cur {
			switch cur {
			case stName:
				name := strings.ToLower(buf.String())
				if !commands[name] {
					return nil, fmt.Errorf("(line %d): unknown command %q", line, buf.String())
				}
				switch name {
				case "from":
					cmd.Name = "model"
				case "parameter":
					nxt = stParameter
				case "message":
					nxt = stMessage
					cmd.Name = name
				default:
					cmd.Name = name
				}
			case stParameter:
				cmd.Name = buf.String()
			case stMessage:
				role = buf.String()
				if role != "system" && role != "user" && role != "assistant" {
					return nil, fmt.Errorf("(line %d): invalid message role %q", line, role)
				}
			case stValue:
				s, ok := unquote(strings.TrimSpace(buf.String()))
				if !ok || isSpace(ch) {
					buf.WriteRune(ch)
					continue
				}
				if role != "" {
					s = role + ": " + s
					role = ""
				}
				cmd.Args = s
				cmds = append(cmds, cmd)
			}
			buf.Reset()
			cur = nxt
		}
		if strconv.IsPrint(keep) {
			buf.WriteRune(keep)
		}
	}
	switch cur {
	case stNil, stComment:
	case stValue:
		s, ok := unquote(strings.TrimSpace(buf.String()))
		if !ok {
			return nil, io.ErrUnexpectedEOF
		}
		if role != "" {
			s = role + ": " + s
		}
		cmd.Args = s
		cmds = append(cmds, cmd)
	default:
		return nil, io.ErrUnexpectedEOF
	}
	for _, c := range cmds {
		if c.Name == "model" {
			return cmds, nil
		}
	}
	return nil, errors.New("no FROM line")
}

// collate joins consecutive messages of one role and gathers every system text, as Ollama does.
func collate(msgs []*Message) (string, []*Message) {
	var system []string
	var out []*Message
	for _, m := range msgs {
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if len(out) > 0 && out[len(out)-1].Role == m.Role && m.Role != "tool" {
			joined := *out[len(out)-1]
			joined.Content += "\n\n" + m.Content
			out[len(out)-1] = &joined
		} else {
			copied := *m
			out = append(out, &copied)
		}
	}
	return strings.Join(system, "\n\n"), out
}

func render(cmds []Command, msgs []*Message) (string, error) {
	var tmplText, system string
	for _, c := range cmds {
		switch c.Name {
		case "template":
			tmplText = c.Args
		case "system":
			system = c.Args
		}
	}
	if !strings.Contains(tmplText, ".Messages") {
		return "", errors.New("TEMPLATE does not use .Messages (only that form is rendered here)")
	}
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(tmplText)
	if err != nil {
		return "", err
	}
	if len(msgs) > 0 && msgs[0].Role != "system" && system != "" {
		msgs = append([]*Message{{Role: "system", Content: system}}, msgs...)
	}
	sys, collated := collate(msgs)
	var b strings.Builder
	err = tmpl.Execute(&b, map[string]any{
		"System": sys, "Messages": collated, "Tools": nil, "Response": "", "Think": false, "IsThinkSet": false,
	})
	return b.String(), err
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	results := make([]result, 0, len(in.Cases))
	for _, c := range in.Cases {
		var res result
		f, err := os.Open(c.Modelfile)
		if err == nil {
			res.Commands, err = parse(f)
			f.Close()
		}
		if err == nil && c.Messages != nil {
			res.Prompt, err = render(res.Commands, c.Messages)
		}
		if err != nil {
			res.Error = err.Error()
		}
		results = append(results, res)
	}
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	if err := out.Encode(results); err != nil {
		os.Exit(1)
	}
}
