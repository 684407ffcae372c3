package gossip

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// sampleMessages holds one of each message type, also the fuzz seeds.
func sampleMessages() []any {
	p := (prefix{}).child(0xa).child(0x3).child(0x7)
	var split answer
	split.kind = answerSplit
	split.children[0] = summary{count: 3, fp: [fpLen]byte{1, 2, 3}}
	split.children[15] = summary{count: 300, fp: [fpLen]byte{9}}
	return []any{
		&reconcileReq{items: []reconcileItem{{prefix: prefix{}, sum: summary{count: 2000, fp: [fpLen]byte{7}}}, {prefix: p}}},
		&reconcileResp{answers: []answer{{kind: answerEqual}, {kind: answerIDs, ids: [][idLen]byte{{1}, {2}, {3}}}, split}},
		&getReq{ids: [][idLen]byte{{1}, {0xff}}},
		&getResp{items: []getItem{{id: [idLen]byte{1}, data: []byte("ok:one")}, {id: [idLen]byte{2}, data: []byte("x")}}},
		&errorMsg{code: errCodeBusy, text: "busy"},
	}
}

func TestWireRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range sampleMessages() {
		b := encode(m)
		got, err := decode(b, DefaultMaxMessageSize)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(normalise(got), normalise(m)) {
			t.Errorf("%T: round trip\n got %+v\nwant %+v", m, got, m)
		}
		if !bytes.Equal(encode(got), b) {
			t.Errorf("%T: re-encoding differs", m)
		}
	}
}

// normalise clears the nil/empty distinction of slices for comparison.
func normalise(m any) any {
	switch m := m.(type) {
	case *reconcileResp:
		c := *m
		c.answers = append([]answer(nil), m.answers...)
		for i := range c.answers {
			if len(c.answers[i].ids) == 0 {
				c.answers[i].ids = nil
			}
		}
		return &c
	}
	return m
}

func TestWireRejects(t *testing.T) {
	t.Parallel()
	tooManyIDs := []byte{msgGet}
	tooManyIDs = appendUvarint(tooManyIDs, maxGetIDs+1)
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"unknown type", []byte{42}},
		{"truncated", encode(&getReq{ids: [][idLen]byte{{1}}})[:10]},
		{"trailing", append(encode(&errorMsg{code: 1, text: "x"}), 0)},
		{"non-canonical varint", []byte{msgGet, 0x81, 0x00}},
		{"too many ids", tooManyIDs},
		{"deep prefix", []byte{msgReconcile, 1, maxDepth + 1}},
		{"bits past depth", append([]byte{msgReconcile, 1, 1, 0x1f}, 0)},
		{"bad answer kind", []byte{msgReconcileResp, 1, 9}},
		{"empty message", append(append([]byte{msgGetResp, 1}, make([]byte, idLen)...), 0)},
		{"message too large", appendUvarint(append([]byte{msgGetResp, 1}, make([]byte, idLen)...), DefaultMaxMessageSize+1)},
		{"long error", appendUvarint([]byte{msgError, 1}, maxErrText+1)},
	} {
		if _, err := decode(tc.body, DefaultMaxMessageSize); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: decode = %v, want ErrMalformed", tc.name, err)
		}
	}
}

func TestReadFrame(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	for _, m := range sampleMessages() {
		if err := writeFrame(&buf, encode(m)); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for range sampleMessages() {
		if _, err := readFrame(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readFrame(r); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"zero length", []byte{0}, ErrMalformed},
		{"over limit", appendUvarint(nil, maxFrame+1), ErrMalformed},
		{"overlong varint", []byte{0x85, 0x00, 1, 2, 3, 4, 5}, ErrMalformed},
		{"cut header", []byte{0x85}, io.ErrUnexpectedEOF},
		{"cut body", []byte{5, 1, 2}, io.ErrUnexpectedEOF},
	} {
		_, err := readFrame(bufio.NewReader(bytes.NewReader(tc.in)))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := writeFrame(io.Discard, make([]byte, maxFrame+1)); err == nil {
		t.Error("wrote an oversized frame")
	}
}

// FuzzSyncMessage: decode never panics, and whatever it accepts encodes
// back to the same bytes (no malleability).
func FuzzSyncMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(encode(m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b, 1<<10)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if re := encode(m); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, re)
		}
	})
}

// FuzzSyncFrame: the frame reader never panics nor returns more than the
// limit, and a frame it returns decodes or fails cleanly.
func FuzzSyncFrame(f *testing.F) {
	for _, m := range sampleMessages() {
		var buf bytes.Buffer
		_ = writeFrame(&buf, encode(m))
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for {
			body, err := readFrame(r)
			if err != nil {
				return
			}
			if len(body) == 0 || len(body) > maxFrame {
				t.Fatalf("frame of %d bytes", len(body))
			}
			_, _ = decode(body, DefaultMaxMessageSize)
		}
	})
}
