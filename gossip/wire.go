package gossip

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Sync protocol limits. docs/protocol.md (gossip section) lists them; a
// peer that exceeds one is breaking the protocol.
const (
	fanout           = 16      // children of a prefix: one hex digit (nibble)
	maxDepth         = 64      // nibbles in a 32-byte ID
	listThreshold    = 32      // a bucket this small is answered with its IDs
	maxListIDs       = 1024    // ...and this small when the asker's is empty
	maxBigListIDs    = 4096    // IDs in such longer lists in one response
	fpLen            = 16      // bytes of a bucket fingerprint
	maxItems         = 256     // prefixes in one reconcile request
	maxGetIDs        = 256     // IDs in one get request
	respSoftBytes    = 1 << 20 // a get response stops adding messages past this
	maxFrame         = 4 << 20 // any frame; > respSoftBytes + MaxMessageSizeLimit
	maxErrText       = 256     // bytes of an error frame's text
	maxRequests      = 4096    // requests in one session
	maxVisits        = 4 << 20 // IDs a server ranges over for one session
	maxMissing       = 1 << 17 // missing IDs one session collects before fetching
	idLen            = 32      // bytes of an ID
	uvarintMaxLen    = binary.MaxVarintLen64
	errCodeLimit     = 1 // error frame: a session limit was hit
	errCodeBusy      = 2 // error frame: the server is at capacity
	errCodeMalformed = 3 // error frame: the request was malformed
)

// Message types: the first byte of a frame's body.
const (
	msgReconcile     byte = 1
	msgReconcileResp byte = 2
	msgGet           byte = 3
	msgGetResp       byte = 4
	msgError         byte = 5
)

// Kinds of answer to one reconcile item.
const (
	answerEqual byte = 0 // the buckets match
	answerIDs   byte = 1 // the server's IDs in the bucket, ascending
	answerSplit byte = 2 // the server's summaries of the 16 child buckets
)

// ErrMalformed is wrapped by every decoding error: the peer broke the
// protocol.
var ErrMalformed = errors.New("malformed sync message")

// prefix is a bucket of the ID space: the IDs whose first depth nibbles
// equal those of b. Nibbles past depth are zero in b.
type prefix struct {
	depth uint8
	b     [idLen]byte
}

// nibble returns the i-th hex digit of id.
func nibble(id *[idLen]byte, i int) byte {
	if i%2 == 0 {
		return id[i/2] >> 4
	}
	return id[i/2] & 0x0f
}

// child returns the prefix extended by the nibble c.
// parent is the bucket p is a child of; p.depth must be positive.
func (p prefix) parent() prefix {
	q := p
	q.depth--
	if q.depth%2 == 0 {
		q.b[q.depth/2] = 0
	} else {
		q.b[q.depth/2] &= 0xf0
	}
	return q
}

func (p prefix) child(c byte) prefix {
	q := p
	if p.depth%2 == 0 {
		q.b[p.depth/2] = c << 4
	} else {
		q.b[p.depth/2] |= c
	}
	q.depth++
	return q
}

// contains reports whether id falls in the bucket.
func (p prefix) contains(id *[idLen]byte) bool {
	n := int(p.depth)
	for i := 0; i < n/2; i++ {
		if id[i] != p.b[i] {
			return false
		}
	}
	return n%2 == 0 || id[n/2]>>4 == p.b[n/2]>>4
}

// bytePrefix is the whole bytes of the prefix, for Inventory.Range.
func (p prefix) bytePrefix() []byte { return p.b[:p.depth/2] }

func (p prefix) String() string {
	const hex = "0123456789abcdef"
	s := make([]byte, p.depth)
	for i := range s {
		s[i] = hex[nibble(&p.b, i)]
	}
	return string(s) + "*"
}

// summary describes a bucket: how many IDs it holds and a fingerprint,
// the first fpLen bytes of sha256 over its IDs in ascending order (zero
// when empty).
type summary struct {
	count uint64
	fp    [fpLen]byte
}

type reconcileItem struct {
	prefix prefix
	sum    summary // the asker's summary of the bucket
}

type reconcileReq struct{ items []reconcileItem }

type answer struct {
	kind     byte
	ids      [][idLen]byte   // answerIDs
	children [fanout]summary // answerSplit
}

type reconcileResp struct{ answers []answer }

type getReq struct{ ids [][idLen]byte }

type getItem struct {
	id   [idLen]byte
	data []byte
}

type getResp struct{ items []getItem }

type errorMsg struct {
	code byte
	text string
}

// appendUvarint appends v in canonical form.
func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendSummary(b []byte, s summary) []byte {
	b = appendUvarint(b, s.count)
	if s.count > 0 {
		b = append(b, s.fp[:]...)
	}
	return b
}

// encode returns the body of a frame carrying m, which must be one of the
// message types above.
func encode(m any) []byte {
	var b []byte
	switch m := m.(type) {
	case *reconcileReq:
		b = append(b, msgReconcile)
		b = appendUvarint(b, uint64(len(m.items)))
		for _, it := range m.items {
			b = append(b, it.prefix.depth)
			b = append(b, it.prefix.b[:(int(it.prefix.depth)+1)/2]...)
			b = appendSummary(b, it.sum)
		}
	case *reconcileResp:
		b = append(b, msgReconcileResp)
		b = appendUvarint(b, uint64(len(m.answers)))
		for _, a := range m.answers {
			b = append(b, a.kind)
			switch a.kind {
			case answerIDs:
				b = appendUvarint(b, uint64(len(a.ids)))
				for _, id := range a.ids {
					b = append(b, id[:]...)
				}
			case answerSplit:
				for _, s := range a.children {
					b = appendSummary(b, s)
				}
			}
		}
	case *getReq:
		b = append(b, msgGet)
		b = appendUvarint(b, uint64(len(m.ids)))
		for _, id := range m.ids {
			b = append(b, id[:]...)
		}
	case *getResp:
		b = append(b, msgGetResp)
		b = appendUvarint(b, uint64(len(m.items)))
		for _, it := range m.items {
			b = append(b, it.id[:]...)
			b = appendUvarint(b, uint64(len(it.data)))
			b = append(b, it.data...)
		}
	case *errorMsg:
		b = append(b, msgError, m.code)
		b = appendUvarint(b, uint64(len(m.text)))
		b = append(b, m.text...)
	default:
		panic(fmt.Sprintf("gossip: encode %T", m))
	}
	return b
}

// decoder reads a frame body, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.fail("truncated")
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

// uvarint reads a canonical uvarint no larger than max.
func (d *decoder) uvarint(max uint64, what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad %s varint", what)
		return 0
	}
	if n != len(binary.AppendUvarint(nil, v)) {
		d.fail("non-canonical %s varint", what)
		return 0
	}
	d.b = d.b[n:]
	if v > max {
		d.fail("%s %d exceeds %d", what, v, max)
		return 0
	}
	return v
}

func (d *decoder) id() (id [idLen]byte) {
	copy(id[:], d.bytes(idLen))
	return id
}

func (d *decoder) summary() (s summary) {
	s.count = d.uvarint(1<<62, "count")
	if s.count > 0 {
		copy(s.fp[:], d.bytes(fpLen))
	}
	return s
}

// decode parses a frame body. maxData caps the data of a get response item.
// Every accepted body re-encodes to the same bytes.
func decode(body []byte, maxData int) (any, error) {
	d := &decoder{b: body}
	var m any
	switch t := d.byte(); t {
	case msgReconcile:
		n := d.uvarint(maxItems, "item count")
		r := &reconcileReq{items: make([]reconcileItem, 0, n)}
		for i := uint64(0); i < n && d.err == nil; i++ {
			var it reconcileItem
			it.prefix.depth = d.byte()
			if it.prefix.depth > maxDepth {
				d.fail("prefix depth %d", it.prefix.depth)
				break
			}
			copy(it.prefix.b[:], d.bytes((int(it.prefix.depth)+1)/2))
			if it.prefix.depth%2 == 1 && it.prefix.b[it.prefix.depth/2]&0x0f != 0 {
				d.fail("prefix has bits past its depth")
			}
			it.sum = d.summary()
			r.items = append(r.items, it)
		}
		m = r
	case msgReconcileResp:
		n := d.uvarint(maxItems, "answer count")
		r := &reconcileResp{answers: make([]answer, 0, n)}
		big := 0
		for i := uint64(0); i < n && d.err == nil; i++ {
			a := answer{kind: d.byte()}
			switch a.kind {
			case answerEqual:
			case answerIDs:
				k := d.uvarint(maxListIDs, "id count")
				if k > listThreshold {
					if big += int(k); big > maxBigListIDs {
						d.fail("more than %d ids in long lists", maxBigListIDs)
					}
				}
				a.ids = make([][idLen]byte, 0, k)
				for j := uint64(0); j < k && d.err == nil; j++ {
					id := d.id()
					if j > 0 && bytes.Compare(id[:], a.ids[j-1][:]) <= 0 {
						d.fail("ids not ascending")
					}
					a.ids = append(a.ids, id)
				}
			case answerSplit:
				for c := range a.children {
					a.children[c] = d.summary()
				}
			default:
				d.fail("answer kind %d", a.kind)
			}
			r.answers = append(r.answers, a)
		}
		m = r
	case msgGet:
		n := d.uvarint(maxGetIDs, "id count")
		if n == 0 {
			d.fail("empty get")
		}
		r := &getReq{ids: make([][idLen]byte, 0, n)}
		for i := uint64(0); i < n && d.err == nil; i++ {
			r.ids = append(r.ids, d.id())
		}
		m = r
	case msgGetResp:
		n := d.uvarint(maxGetIDs, "item count")
		r := &getResp{items: make([]getItem, 0, n)}
		for i := uint64(0); i < n && d.err == nil; i++ {
			it := getItem{id: d.id()}
			size := d.uvarint(uint64(maxData), "message size")
			if size == 0 {
				d.fail("empty message")
			}
			it.data = d.bytes(int(size))
			r.items = append(r.items, it)
		}
		m = r
	case msgError:
		e := &errorMsg{code: d.byte()}
		e.text = string(d.bytes(int(d.uvarint(maxErrText, "text length"))))
		m = e
	default:
		d.fail("message type %d", t)
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// writeFrame writes one length-prefixed frame.
func writeFrame(w io.Writer, body []byte) error {
	if len(body) > maxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(body), maxFrame)
	}
	hdr := binary.AppendUvarint(make([]byte, 0, uvarintMaxLen), uint64(len(body)))
	if _, err := w.Write(append(hdr, body...)); err != nil {
		return err
	}
	return nil
}

// readFrame reads one length-prefixed frame of at most maxFrame bytes.
// A bad or oversized length is ErrMalformed; io errors pass through.
func readFrame(r *bufio.Reader) ([]byte, error) {
	var n uint64
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if i == uvarintMaxLen-1 || (i > 0 && c == 0) {
			return nil, fmt.Errorf("%w: bad frame length", ErrMalformed)
		}
		n |= uint64(c&0x7f) << (7 * i)
		if n > maxFrame {
			return nil, fmt.Errorf("%w: frame length over %d", ErrMalformed, maxFrame)
		}
		if c < 0x80 {
			break
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}
