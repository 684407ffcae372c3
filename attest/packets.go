package attest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// OpenPGP packet tags rbnode handles (RFC 4880 section 4.3).
const (
	tagSignature     = 2
	tagSecretKey     = 5
	tagPublicKey     = 6
	tagSecretSubkey  = 7
	tagMarker        = 10
	tagTrust         = 12
	tagUserID        = 13
	tagPublicSubkey  = 14
	tagUserAttribute = 17
)

// rawPacket is one OpenPGP packet exactly as it was framed in the input.
type rawPacket struct {
	tag   int
	whole []byte // header and body
	body  []byte
	// For self-signatures kept in a certificate: their class and creation
	// time (Unix seconds), set by groupCerts.
	sigType packet.SignatureType
	created int64
}

// splitPackets frames b into packets without interpreting their bodies.
// Partial and indeterminate lengths are refused: GnuPG never writes them for
// keys or signatures, and they only make bounds harder to reason about.
func splitPackets(b []byte) ([]rawPacket, error) {
	var out []rawPacket
	for off := 0; off < len(b); {
		start := off
		h := b[off]
		if h&0x80 == 0 {
			return nil, fmt.Errorf("byte %d is not an OpenPGP packet header", off)
		}
		off++
		var tag, n int
		if h&0x40 != 0 { // new format
			tag = int(h & 0x3f)
			if off >= len(b) {
				return nil, errors.New("truncated packet header")
			}
			o1 := int(b[off])
			switch {
			case o1 < 192:
				n, off = o1, off+1
			case o1 < 224:
				if off+1 >= len(b) {
					return nil, errors.New("truncated packet header")
				}
				n, off = (o1-192)<<8+int(b[off+1])+192, off+2
			case o1 == 255:
				if off+4 >= len(b) {
					return nil, errors.New("truncated packet header")
				}
				n, off = int(uint32(b[off+1])<<24|uint32(b[off+2])<<16|uint32(b[off+3])<<8|uint32(b[off+4])), off+5
			default:
				return nil, fmt.Errorf("packet at byte %d uses a partial length, which keys and signatures never do", start)
			}
		} else { // old format
			tag = int(h>>2) & 0xf
			var w int
			switch h & 3 {
			case 0:
				w = 1
			case 1:
				w = 2
			case 2:
				w = 4
			default:
				return nil, fmt.Errorf("packet at byte %d has an indeterminate length", start)
			}
			if off+w > len(b) {
				return nil, errors.New("truncated packet header")
			}
			for i := 0; i < w; i++ {
				n = n<<8 | int(b[off+i])
			}
			off += w
		}
		if n < 0 || n > len(b)-off {
			return nil, fmt.Errorf("packet at byte %d claims %d bytes, only %d remain", start, n, len(b)-off)
		}
		out = append(out, rawPacket{tag: tag, whole: b[start : off+n], body: b[off : off+n]})
		off += n
	}
	return out, nil
}

// armored reports whether b holds ASCII armour rather than binary packets.
func armored(b []byte) bool {
	return bytes.Contains(b[:min(len(b), 4096)], []byte("-----BEGIN PGP "))
}

// dearmor decodes every armour block of the given type in b, in order, and
// refuses blocks of other types. Text outside the blocks is ignored, as GnuPG
// ignores it.
func dearmor(b []byte, blockType string) ([][]byte, error) {
	var out [][]byte
	const begin = "-----BEGIN PGP "
	s := string(b)
	for {
		i := strings.Index(s, begin)
		if i < 0 {
			break
		}
		s = s[i:]
		endMarker := "-----END PGP "
		j := strings.Index(s, endMarker)
		if j < 0 {
			return nil, errors.New("armour has a BEGIN line and no END line (truncated?)")
		}
		k := strings.Index(s[j+len(endMarker):], "-----")
		if k < 0 {
			return nil, errors.New("armour END line is cut short (truncated?)")
		}
		blockEnd := j + len(endMarker) + k + len("-----")
		blk, err := armor.Decode(strings.NewReader(s[:blockEnd]))
		if err != nil {
			return nil, fmt.Errorf("decode armour: %w", err)
		}
		if blk.Type != blockType {
			return nil, fmt.Errorf("armour holds a %q block, want %q", blk.Type, blockType)
		}
		body, err := io.ReadAll(blk.Body)
		if err != nil {
			return nil, fmt.Errorf("decode armour: %w", err)
		}
		out = append(out, body)
		s = s[blockEnd:]
	}
	if len(out) == 0 {
		return nil, errors.New("no armour block found")
	}
	return out, nil
}
