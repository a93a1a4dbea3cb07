// Command citychain-sigverify checks Ed25519 signatures for the citychain IoT gateway.
//
// The gateway writes requests to stdin and reads one answer per request from stdout, in order.
// All integers are little-endian uint32.
//
//	request:  count, then count times: public key (32 bytes), signature (64 bytes),
//	          message length, message
//	answer:   count bytes, 1 where the signature is valid and 0 where it is not, then
//	          32 bytes per reading job (below), in request order
//
// A message length with its top bit set (0x80000000 | length) marks a reading job: the message
// is a reading's wire payload in the gateway's exact form (JSON, keys sorted, no spaces:
// {"device":…,"seq":…,"sig":…,"stream":…,"ts_ms":…,"value":…}), and this command builds what
// the device signed itself: the -reading-prefix bytes (domain, chain id) followed by the
// canonical CBOR map of the five signed fields (citychain.core.codec's encoding, keys length
// first). Its answer byte is 1 or 0 as above, or 2 when the payload is not in that form or its
// "sig" is not the job's signature (the gateway then checks the reading itself), and its 32
// bytes are the reading id: the SHA-256 of the canonical map of all six fields, "sig" as bytes
// (zeros with answer 2). The gateway then spends none of its own time on either encoding.
//
// Verification follows libsodium's crypto_sign_verify_detached (what PyNaCl, and so every other
// check in citychain, uses) exactly: S must be canonical, A and R canonical and not of small
// order, and the cofactorless equation [S]B = R + [k]A must hold byte for byte. It uses
// curve25519-voi (the Ed25519 implementation CometBFT itself uses), whose assembly field
// arithmetic makes one check about half as costly as with libsodium's portable code on x86-64
// (47-54 against 89-94 us of CPU, measured side by side on the 2-core development machine).
//
// Requests are read while earlier ones are being verified, so a writer never waits for the
// verification of a previous request to finish. Public keys are kept expanded (voi's
// precomputed tables, ~1.5 KB each, ~10 us to build) for up to -key-cache keys, which saves
// about a tenth of each check of a device seen before; when the cache is full a random entry
// makes room. The process exits 0 at the end of its input
// (the gateway closed the pipe, or died) and 2 on a malformed request.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

const (
	version       = "2"
	maxJobs       = 1 << 20
	maxMessageLen = 1 << 20
	readingFlag   = 1 << 31
)

// strict mirrors libsodium: every Allow* option off, cofactorless equation.
var strict = &ed25519.Options{Verify: &ed25519.VerifyOptions{CofactorlessVerify: true}}

type job struct {
	pubkey    []byte
	signature []byte
	message   []byte
	reading   bool // message is a wire payload (a reading job)
}

func readRequest(in *bufio.Reader) ([]job, error) {
	var header [4]byte
	if _, err := io.ReadFull(in, header[:]); err != nil {
		return nil, err // io.EOF: no more requests
	}
	count := binary.LittleEndian.Uint32(header[:])
	if count > maxJobs {
		return nil, fmt.Errorf("request of %d signatures (at most %d)", count, maxJobs)
	}
	jobs := make([]job, count)
	for i := range jobs {
		var fixed [100]byte
		if _, err := io.ReadFull(in, fixed[:]); err != nil {
			return nil, fmt.Errorf("signature %d of %d: %w", i, count, noEOF(err))
		}
		length := binary.LittleEndian.Uint32(fixed[96:])
		reading := length&readingFlag != 0
		length &^= readingFlag
		if length > maxMessageLen {
			return nil, fmt.Errorf("signature %d: message of %d bytes (at most %d)", i, length, maxMessageLen)
		}
		message := make([]byte, length)
		if _, err := io.ReadFull(in, message); err != nil {
			return nil, fmt.Errorf("signature %d of %d: %w", i, count, noEOF(err))
		}
		jobs[i] = job{append([]byte(nil), fixed[:32]...), append([]byte(nil), fixed[32:96]...), message, reading}
	}
	return jobs, nil
}

// noEOF turns an end of input inside a request into an error of its own.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// keyCache holds expanded public keys (nil: the key does not decode, so never valid).
type keyCache struct {
	mu      sync.Mutex
	keys    map[[32]byte]*ed25519.ExpandedPublicKey
	maxKeys int
}

func (c *keyCache) get(pubkey []byte) (*ed25519.ExpandedPublicKey, bool) {
	var id [32]byte
	copy(id[:], pubkey)
	c.mu.Lock()
	expanded, found := c.keys[id]
	c.mu.Unlock()
	if found {
		return expanded, expanded != nil
	}
	expanded, err := ed25519.NewExpandedPublicKey(pubkey)
	if err != nil {
		expanded = nil
	}
	c.mu.Lock()
	if len(c.keys) >= c.maxKeys {
		for evicted := range c.keys { // map order is random: a random entry goes
			delete(c.keys, evicted)
			break
		}
	}
	if c.maxKeys > 0 {
		c.keys[id] = expanded
	}
	c.mu.Unlock()
	return expanded, expanded != nil
}

func (c *keyCache) valid(j job) bool {
	if c.maxKeys == 0 {
		return ed25519.VerifyWithOptions(j.pubkey, j.message, j.signature, strict)
	}
	expanded, ok := c.get(j.pubkey)
	return ok && ed25519.VerifyExpandedWithOptions(expanded, j.message, j.signature, strict)
}

// verify checks jobs with up to workers goroutines: answer[i] is 1 when jobs[i] is valid (2 for
// a reading job whose payload is not in the wire form), followed by the id of each reading job.
func verify(jobs []job, workers int, cache *keyCache, prefix []byte) []byte {
	ids := 0
	for _, j := range jobs {
		if j.reading {
			ids++
		}
	}
	answer := make([]byte, len(jobs)+32*ids)
	idAt := make([]int, len(jobs)) // where each reading job's id goes
	next := len(jobs)
	for i, j := range jobs {
		if j.reading {
			idAt[i] = next
			next += 32
		}
	}
	if workers > len(jobs) {
		workers = len(jobs)
	}
	var group sync.WaitGroup
	for w := 0; w < workers; w++ {
		group.Add(1)
		go func(first int) {
			defer group.Done()
			for i := first; i < len(jobs); i += workers {
				j := jobs[i]
				if j.reading {
					signed, id, ok := encodeReading(prefix, j.message, j.signature)
					if !ok || len(prefix) == 0 {
						answer[i] = 2
						continue
					}
					copy(answer[idAt[i]:], id[:])
					j.message = signed
				}
				if cache.valid(j) {
					answer[i] = 1
				}
			}
		}(w)
	}
	group.Wait()
	return answer
}

// Canonical CBOR (RFC 8949 §4.2.1), only what a reading needs: integers, text, bytes, a map head.
func cborHead(out []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(out, major<<5|byte(n))
	case n <= 0xff:
		return append(out, major<<5|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(out, major<<5|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(out, major<<5|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(out, major<<5|27), n)
}

func cborInt(out []byte, v int64) []byte {
	if v >= 0 {
		return cborHead(out, 0, uint64(v))
	}
	return cborHead(out, 1, uint64(-1-v))
}

func cborText(out []byte, text string) []byte {
	return append(cborHead(out, 3, uint64(len(text))), text...)
}

// wireReading is a payload's fields; parseWire reads exactly the gateway's wire form.
type wireReading struct {
	device, stream, sig string
	seq, tsMs, value    int64
}

func parseWire(payload []byte) (wireReading, bool) {
	var r wireReading
	rest := string(payload)
	take := func(literal string) bool {
		if len(rest) < len(literal) || rest[:len(literal)] != literal {
			return false
		}
		rest = rest[len(literal):]
		return true
	}
	text := func() (string, bool) { // up to the closing quote: printable ASCII, no escapes
		for i := 0; i < len(rest); i++ {
			c := rest[i]
			if c == '"' {
				value := rest[:i]
				rest = rest[i+1:]
				return value, true
			}
			if c < 0x20 || c > 0x7e || c == '\\' {
				return "", false
			}
		}
		return "", false
	}
	number := func(signed bool) (int64, bool) {
		negative := signed && len(rest) > 0 && rest[0] == '-'
		if negative {
			rest = rest[1:]
		}
		digits := 0
		for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
			digits++
		}
		if digits == 0 || digits > 19 || (digits > 1 && rest[0] == '0') {
			return 0, false
		}
		var n uint64
		for _, c := range rest[:digits] {
			n = n*10 + uint64(c-'0')
		}
		rest = rest[digits:]
		if n > 1<<63-1 {
			return 0, false
		}
		if negative {
			return -int64(n), true
		}
		return int64(n), true
	}
	var ok bool
	if !take(`{"device":"`) {
		return r, false
	}
	if r.device, ok = text(); !ok || !take(`,"seq":`) {
		return r, false
	}
	if r.seq, ok = number(false); !ok || !take(`,"sig":"`) {
		return r, false
	}
	if r.sig, ok = text(); !ok || !take(`,"stream":"`) {
		return r, false
	}
	if r.stream, ok = text(); !ok || !take(`,"ts_ms":`) {
		return r, false
	}
	if r.tsMs, ok = number(false); !ok || !take(`,"value":`) {
		return r, false
	}
	if r.value, ok = number(true); !ok || rest != "}" {
		return r, false
	}
	return r, true
}

// encodeReading returns what the device signed (prefix, then the map of the five signed fields)
// and the reading id (SHA-256 of the map of all six), or false when the payload is not in the
// wire form or names another signature than the job's.
func encodeReading(prefix, payload, signature []byte) ([]byte, [32]byte, bool) {
	var id [32]byte
	r, ok := parseWire(payload)
	if !ok || len(r.sig) != 128 || hex.EncodeToString(signature) != r.sig {
		return nil, id, false
	}
	// Keys in canonical order: seq, [sig,] ts_ms, value, device, stream.
	head := cborInt(cborText(nil, "seq"), r.seq)
	tail := cborInt(cborText(nil, "ts_ms"), r.tsMs)
	tail = cborInt(cborText(tail, "value"), r.value)
	tail = cborText(cborText(tail, "device"), r.device)
	tail = cborText(cborText(tail, "stream"), r.stream)
	signed := make([]byte, 0, len(prefix)+1+len(head)+len(tail))
	signed = append(append(append(append(signed, prefix...), 0xa5), head...), tail...)
	whole := append([]byte{0xa6}, head...)
	whole = append(cborHead(cborText(whole, "sig"), 2, uint64(len(signature))), signature...)
	id = sha256.Sum256(append(whole, tail...))
	return signed, id, true
}

func main() {
	workers := flag.Int("workers", 1, "goroutines verifying each request")
	maxKeys := flag.Int("key-cache", 16384, "public keys kept expanded (0: none)")
	prefixHex := flag.String("reading-prefix", "", "hex of the bytes every reading's signed bytes "+
		"start with (domain and chain id); without it a reading job's answer is 2")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Printf("citychain-sigverify %s (curve25519-voi, libsodium-compatible verification)\n", version)
		return
	}
	if *workers < 1 || *maxKeys < 0 {
		fmt.Fprintln(os.Stderr, "citychain-sigverify: -workers must be at least 1, -key-cache at least 0")
		os.Exit(2)
	}
	prefix, err := hex.DecodeString(*prefixHex)
	if err != nil {
		fmt.Fprintln(os.Stderr, "citychain-sigverify: -reading-prefix must be hex")
		os.Exit(2)
	}
	cache := &keyCache{keys: make(map[[32]byte]*ed25519.ExpandedPublicKey), maxKeys: *maxKeys}
	requests := make(chan []job, 4)
	failure := make(chan error, 1)
	go func() {
		in := bufio.NewReaderSize(os.Stdin, 1<<20)
		for {
			jobs, err := readRequest(in)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					failure <- err
				}
				close(requests)
				return
			}
			requests <- jobs
		}
	}()
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	for jobs := range requests {
		if _, err := out.Write(verify(jobs, *workers, cache, prefix)); err != nil {
			os.Exit(0) // the reader is gone
		}
		if err := out.Flush(); err != nil {
			os.Exit(0)
		}
	}
	select {
	case err := <-failure:
		fmt.Fprintf(os.Stderr, "citychain-sigverify: malformed request: %v\n", err)
		os.Exit(2)
	default:
	}
}
