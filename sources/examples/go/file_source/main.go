// file_source is an exec source for hopper, in Go: the lines of a
// JSON-lines file, one item each, with the line number as its id.
//
//	go build -o file_source . && hopper run -s 'exec:./file_source in.jsonl' -- WORKER
//
// It gives items while it has credit, gives a nacked item again when it is
// due (with the attempts made), and says {"end": true} once every line has
// been acknowledged or declared dead. It keeps nothing between runs: a run
// that stops early leaves the next one to start from the first line. When
// hopper offers it (HOPPER_FEATURES), its hello asks for acknowledgements in
// lists, {"ack": ["17", "18"]}: fewer lines to read. Standard library only;
// the contract is sources/PROTOCOL.md.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// message is one line hopper writes on our stdin.
type message struct {
	Credit   int64           `json:"credit"`
	Ack      json.RawMessage `json:"ack"` // an id, or a list of ids
	Acks     []string        `json:"-"`
	Nack     *string         `json:"nack"`
	Dead     *string         `json:"dead"`
	Release  *string         `json:"release"`
	RetryAt  int64           `json:"retry_at"`
	Attempts int             `json:"attempts"`
	Record   json.RawMessage `json:"record"`
}

type item struct {
	id       string
	payload  []byte
	attempts int
	due      int64 // unix ms, for a nacked item
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: file_source FILE.jsonl")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lines := bufio.NewScanner(f)
	lines.Buffer(make([]byte, 1<<20), 16<<20)

	// hopper's lines, until our stdin closes: read on a goroutine of their
	// own and handed over in batches, all that had arrived together.
	batches := make(chan []message)
	go func() {
		in := bufio.NewReaderSize(os.Stdin, 1<<20)
		var batch []message
		for {
			line, err := in.ReadBytes('\n')
			if len(line) > 1 {
				if m, ok := parse(line); ok {
					batch = append(batch, m)
				}
			}
			if err != nil {
				break
			}
			if in.Buffered() == 0 && len(batch) > 0 {
				batches <- batch
				batch = nil
			}
		}
		if len(batch) > 0 {
			batches <- batch
		}
		close(batches)
	}()

	out := bufio.NewWriter(os.Stdout)
	if strings.Contains(" "+os.Getenv("HOPPER_FEATURES")+" ", " ack_lists ") {
		out.WriteString(`{"hello":{"ack_lists":true}}` + "\n")
	}
	var credit int64
	lineno := 0
	eof := false
	ended := false
	stopping := false // hopper released an item: the run is ending
	outstanding := map[string]item{}
	var waiting []item // nacked, by due time

	give := func(it item) {
		// The id is a line number and the payload a line of JSON: the
		// item line is written as it stands, with no encoder.
		out.WriteString(`{"id":"`)
		out.WriteString(it.id)
		out.WriteString(`","payload":`)
		out.Write(it.payload)
		if it.attempts > 0 {
			out.WriteString(`,"attempts":`)
			out.WriteString(strconv.Itoa(it.attempts))
		}
		out.WriteString("}\n")
		outstanding[it.id] = it
		credit--
	}

	handle := func(m message) {
		switch {
		case m.Credit > 0:
			credit += m.Credit
		case m.Acks != nil:
			for _, id := range m.Acks {
				delete(outstanding, id)
			}
		case m.Dead != nil:
			delete(outstanding, *m.Dead)
		case m.Release != nil:
			// The run stops: give nothing more. Not done, so the
			// next run gives it again.
			delete(outstanding, *m.Release)
			stopping = true
		case m.Nack != nil:
			if it, ok := outstanding[*m.Nack]; ok {
				delete(outstanding, *m.Nack)
				it.due = m.RetryAt
				it.attempts = m.Attempts
				waiting = append(waiting, it)
				sort.Slice(waiting, func(i, j int) bool {
					return waiting[i].due < waiting[j].due
				})
			}
		}
	}

	for {
		now := time.Now().UnixMilli()
		for credit > 0 && !stopping {
			if len(waiting) > 0 && waiting[0].due <= now {
				give(waiting[0])
				waiting = waiting[1:]
			} else if !eof && lines.Scan() {
				lineno++
				if len(lines.Bytes()) == 0 {
					continue
				}
				p := append([]byte(nil), lines.Bytes()...)
				give(item{id: strconv.Itoa(lineno), payload: p})
			} else {
				eof = true
				break
			}
		}
		if eof && len(outstanding) == 0 && len(waiting) == 0 && !ended && !stopping {
			out.WriteString("{\"end\":true}\n")
			ended = true
		}
		out.Flush()

		var timer <-chan time.Time
		if len(waiting) > 0 && credit > 0 {
			timer = time.After(time.Duration(waiting[0].due-now) * time.Millisecond)
		}
		select {
		case batch, ok := <-batches:
			if !ok {
				return // stdin closed: the run is over
			}
			for _, m := range batch {
				handle(m)
			}
		case <-timer:
		}
	}
}

// parse reads one of hopper's lines. An ack, the common line, is read
// without the JSON decoder when its ids have nothing escaped.
func parse(line []byte) (message, bool) {
	var m message
	line = bytes.TrimSpace(line)
	if bytes.IndexByte(line, '\\') < 0 {
		if bytes.HasPrefix(line, []byte(`{"ack":"`)) && bytes.HasSuffix(line, []byte(`"}`)) {
			m.Acks = []string{string(line[8 : len(line)-2])}
			return m, true
		}
		if bytes.HasPrefix(line, []byte(`{"ack":["`)) && bytes.HasSuffix(line, []byte(`"]}`)) {
			m.Acks = strings.Split(string(line[9:len(line)-3]), `","`)
			return m, true
		}
	}
	if err := json.Unmarshal(line, &m); err != nil {
		fmt.Fprintln(os.Stderr, "bad line from hopper:", err)
		return m, false
	}
	if m.Ack != nil {
		var one string
		if json.Unmarshal(m.Ack, &one) == nil {
			m.Acks = []string{one}
		} else if json.Unmarshal(m.Ack, &m.Acks) != nil || m.Acks == nil {
			m.Acks = []string{}
		}
	}
	return m, true
}
