// A hopper worker in Go that emits: a splitter and a filter, stream mode.
//
// The payload is a string or {"text": "..."}; each word becomes one output,
// {"word": W, "n": I} (I from 0), on the port "number" when the word is all
// ASCII digits and "word" otherwise, with the word as its key (a sharded
// stage after it sees every copy of a word in one shard). Text with no words
// is dropped. Anything else is a permanent failure. Words are runs of
// anything but ASCII whitespace, as in every example.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

type envelope struct {
	ID      string `json:"id"`
	Attempt int    `json:"attempt"`
	Payload any    `json:"payload"`
}

// One output of the item: written, like the answer, as one line.
type emit struct {
	ID   string         `json:"id"`
	Emit map[string]any `json:"emit"`
	Port string         `json:"port"`
	Key  string         `json:"key"`
}

func words(text string) []string {
	return strings.FieldsFunc(text, func(r rune) bool {
		return strings.ContainsRune(" \t\n\v\f\r", r)
	})
}

func port(word string) string {
	if strings.Trim(word, "0123456789") == "" {
		return "number"
	}
	return "word"
}

func main() {
	in := bufio.NewReader(os.Stdin)   // unlike bufio.Scanner, no line limit
	out := json.NewEncoder(os.Stdout) // os.Stdout is unbuffered: no flush
	out.SetEscapeHTML(false)
	for {
		line, err := in.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			return // EOF on stdin: exit now
		} else if err != nil && err != io.EOF {
			fmt.Fprintln(os.Stderr, "reading stdin:", err)
			os.Exit(1)
		}
		var item envelope
		if err := json.Unmarshal(line, &item); err != nil {
			fmt.Fprintln(os.Stderr, "not an envelope:", err)
			os.Exit(1)
		}
		obj, _ := item.Payload.(map[string]any)
		text, ok := item.Payload.(string)
		if !ok {
			text, ok = obj["text"].(string)
		}
		if !ok {
			out.Encode(map[string]any{"id": item.ID, "ok": false, "retry": false,
				"error": `payload must be a string, or an object with a "text" string`})
			continue
		}
		ws := words(text)
		for n, w := range ws {
			out.Encode(emit{item.ID, map[string]any{"word": w, "n": n}, port(w), w})
		}
		// No words: no output at all.
		out.Encode(map[string]any{"id": item.ID, "ok": true, "drop": len(ws) == 0})
	}
}
