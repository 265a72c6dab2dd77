// A hopper worker in Go, stream mode: one JSON line in, one JSON line out.
//
// The payload is a string (count its words), {"text": "..."} (count those) or
// {"path": "..."} (count the words in that file); the result is {"words": N}.
// Anything else is a permanent failure. Words are runs of anything but ASCII
// whitespace, as in every example.
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

func countWords(text string) int {
	return len(strings.FieldsFunc(text, func(r rune) bool {
		return strings.ContainsRune(" \t\n\v\f\r", r)
	}))
}

func wordCount(payload any) (int, error) {
	obj, _ := payload.(map[string]any)
	if text, ok := payload.(string); ok {
		return countWords(text), nil
	} else if text, ok := obj["text"].(string); ok {
		return countWords(text), nil
	} else if path, ok := obj["path"].(string); ok {
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, fmt.Errorf("cannot read %s: %w", path, err)
		}
		return countWords(string(data)), nil
	}
	return 0, fmt.Errorf(`payload must be a string, or an object with a "text" or "path" string`)
}

func main() {
	in := bufio.NewReader(os.Stdin)   // unlike bufio.Scanner, no line limit
	out := json.NewEncoder(os.Stdout) // os.Stdout is unbuffered: no flush
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
		words, err := wordCount(item.Payload)
		if err != nil {
			out.Encode(map[string]any{"id": item.ID, "ok": false, "error": err.Error(), "retry": false})
		} else {
			out.Encode(map[string]any{"id": item.ID, "ok": true, "result": map[string]int{"words": words}})
		}
	}
}
