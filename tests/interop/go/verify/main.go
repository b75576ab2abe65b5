// Command verify checks the receipts ledger's signed checkpoints and RFC 9162
// proofs with Go's reference implementations, golang.org/x/mod/sumdb/note and
// golang.org/x/mod/sumdb/tlog: the tools an outside auditor would use.
//
// Only those packages (and the standard library) touch keys, signatures and
// hashes here; the program merely parses the plain-text framing around them
// (the c2sp.org/tlog-checkpoint body and the c2sp.org/tlog-proof@v1 lines).
//
// Usage: verify MODE < request.json > result.json
//
//	verify    check a signed checkpoint, optionally a leaf's inclusion under it
//	          and its consistency with an older signed checkpoint
//	sign      sign a checkpoint text with a Go signer key (given, or generated)
//	treehash  build a tree with tlog.StoredHashes and report tlog.TreeHash for
//	          each size (0 apart), plus tlog.ProveRecord / tlog.ProveTree proofs
//	open      open any signed note (a key rotation statement) with several
//	          verifier keys and report which of them signed it
//
// On success it prints a JSON object and exits 0. On any failure it prints
// {"ok": false, "stage": ..., "error": <Go error text>} on stdout, the same
// error on stderr, and exits 1.
//
// Build offline (Debian bookworm: golang-go golang-golang-x-mod-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o verify ./tests/interop/go/verify
package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// stageError names the step that failed; Err is the Go packages' own error.
type stageError struct {
	Stage string
	Err   error
}

func (e *stageError) Error() string { return e.Stage + ": " + e.Err.Error() }

func fail(stage string, err error) error { return &stageError{stage, err} }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: verify verify|sign|treehash|open < request.json")
		os.Exit(2)
	}
	out, err := run(os.Args[1], os.Stdin)
	if err != nil {
		stage := "request"
		var se *stageError
		if errors.As(err, &se) {
			stage = se.Stage
			err = se.Err
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", stage, err)
		emit(map[string]any{"ok": false, "stage": stage, "error": err.Error()})
		os.Exit(1)
	}
	out["ok"] = true
	emit(out)
}

func emit(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, "cannot write result:", err)
		os.Exit(1)
	}
}

func run(mode string, in io.Reader) (map[string]any, error) {
	dec := json.NewDecoder(in)
	dec.DisallowUnknownFields()
	switch mode {
	case "verify":
		var req verifyRequest
		if err := dec.Decode(&req); err != nil {
			return nil, fail("request", err)
		}
		return verify(&req)
	case "sign":
		var req signRequest
		if err := dec.Decode(&req); err != nil {
			return nil, fail("request", err)
		}
		return sign(&req)
	case "treehash":
		var req treeRequest
		if err := dec.Decode(&req); err != nil {
			return nil, fail("request", err)
		}
		return treeHash(&req)
	case "open":
		var req openRequest
		if err := dec.Decode(&req); err != nil {
			return nil, fail("request", err)
		}
		return openNote(&req)
	}
	return nil, fail("usage", fmt.Errorf("unknown mode %q", mode))
}

// --- verify ----------------------------------------------------------------------------------

type verifyRequest struct {
	Vkey string `json:"vkey"`
	Note string `json:"note"`
	// Inclusion of one leaf, if LeafDataB64 is set: Index and ProofB64, or
	// ProofText (a whole c2sp.org/tlog-proof@v1 text, whose checkpoint then
	// replaces Note).
	LeafDataB64 *string  `json:"leaf_data_b64"`
	Index       *int64   `json:"index"`
	ProofB64    []string `json:"proof_b64"`
	ProofText   *string  `json:"proof_text"`
	// Consistency of Note's tree with OldNote's, if OldNote is set.
	OldNote        *string  `json:"old_note"`
	ConsistencyB64 []string `json:"consistency_b64"`
}

type checkpoint struct {
	Origin     string
	Size       int64
	Root       tlog.Hash
	Extensions []string
}

// openCheckpoint checks the note's signature with note.Open, then parses the
// c2sp.org/tlog-checkpoint body: origin, decimal size, base64 root, extensions.
func openCheckpoint(stage, msg string, verifiers note.Verifiers) (*checkpoint, error) {
	n, err := note.Open([]byte(msg), verifiers)
	if err != nil {
		return nil, fail(stage+".signature", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return nil, fail(stage+".body", fmt.Errorf("checkpoint has %d lines, want >= 3", len(lines)))
	}
	if lines[0] == "" {
		return nil, fail(stage+".body", errors.New("empty origin line"))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return nil, fail(stage+".body", fmt.Errorf("malformed tree size %q", lines[1]))
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return nil, fail(stage+".body", fmt.Errorf("root %q: %v", lines[2], err))
	}
	for i, ext := range lines[3:] {
		if ext == "" {
			return nil, fail(stage+".body", fmt.Errorf("empty extension line %d", i+4))
		}
	}
	return &checkpoint{lines[0], size, root, lines[3:]}, nil
}

func parseHashes(stage string, list []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(list))
	for i, s := range list {
		h, err := tlog.ParseHash(s)
		if err != nil {
			return nil, fail(stage, fmt.Errorf("hash %d %q: %v", i, s, err))
		}
		out[i] = h
	}
	return out, nil
}

// parseProofText splits a c2sp.org/tlog-proof@v1 text into index, hashes and
// the checkpoint note.
func parseProofText(text string) (int64, []string, string, error) {
	head, note, ok := strings.Cut(text, "\n\n")
	if !ok {
		return 0, nil, "", errors.New("no blank line before the checkpoint")
	}
	lines := strings.Split(head, "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return 0, nil, "", fmt.Errorf("bad header line %q", lines[0])
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return 0, nil, "", errors.New("missing index line")
	}
	digits := strings.TrimPrefix(lines[0], "index ")
	index, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || index < 0 || strconv.FormatInt(index, 10) != digits {
		return 0, nil, "", fmt.Errorf("malformed index line %q", lines[0])
	}
	return index, lines[1:], note, nil
}

func verify(req *verifyRequest) (map[string]any, error) {
	v, err := note.NewVerifier(req.Vkey)
	if err != nil {
		return nil, fail("vkey", err)
	}
	verifiers := note.VerifierList(v)
	out := map[string]any{"key_name": v.Name(), "key_hash": fmt.Sprintf("%08x", v.KeyHash())}

	msg, index, proof := req.Note, req.Index, req.ProofB64
	if req.ProofText != nil {
		i, hashes, n, err := parseProofText(*req.ProofText)
		if err != nil {
			return nil, fail("proof_text", err)
		}
		msg, index, proof = n, &i, hashes
	}

	cp, err := openCheckpoint("checkpoint", msg, verifiers)
	if err != nil {
		return nil, err
	}
	out["origin"] = cp.Origin
	out["size"] = cp.Size
	out["root_b64"] = cp.Root.String()
	out["extensions"] = cp.Extensions
	out["signature"] = true

	if req.LeafDataB64 != nil {
		data, err := base64.StdEncoding.DecodeString(*req.LeafDataB64)
		if err != nil {
			return nil, fail("leaf_data", err)
		}
		if index == nil {
			return nil, fail("inclusion", errors.New("no index given"))
		}
		hashes, err := parseHashes("inclusion", proof)
		if err != nil {
			return nil, err
		}
		leaf := tlog.RecordHash(data)
		out["leaf_hash_b64"] = leaf.String()
		if err := tlog.CheckRecord(tlog.RecordProof(hashes), cp.Size, cp.Root, *index, leaf); err != nil {
			return nil, fail("inclusion", err)
		}
		out["index"] = *index
		out["inclusion"] = true
	}

	if req.OldNote != nil {
		old, err := openCheckpoint("old_checkpoint", *req.OldNote, verifiers)
		if err != nil {
			return nil, err
		}
		hashes, err := parseHashes("consistency", req.ConsistencyB64)
		if err != nil {
			return nil, err
		}
		if err := tlog.CheckTree(tlog.TreeProof(hashes), cp.Size, cp.Root, old.Size, old.Root); err != nil {
			return nil, fail("consistency", err)
		}
		out["old_size"] = old.Size
		out["consistency"] = true
	}
	return out, nil
}

// --- sign ------------------------------------------------------------------------------------

type signRequest struct {
	// Skey is a PRIVATE+KEY+... signer key; if empty, note.GenerateKey makes one named Name.
	Skey string `json:"skey"`
	Name string `json:"name"`
	Text string `json:"text"`
}

func sign(req *signRequest) (map[string]any, error) {
	skey, vkey := req.Skey, ""
	if skey == "" {
		var err error
		skey, vkey, err = note.GenerateKey(rand.Reader, req.Name)
		if err != nil {
			return nil, fail("generate", err)
		}
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fail("skey", err)
	}
	msg, err := note.Sign(&note.Note{Text: req.Text}, s)
	if err != nil {
		return nil, fail("sign", err)
	}
	return map[string]any{"skey": skey, "vkey": vkey, "note": string(msg)}, nil
}

// --- treehash --------------------------------------------------------------------------------

type treeRequest struct {
	LeavesB64    []string   `json:"leaves_b64"`
	RecordProofs [][2]int64 `json:"record_proofs"` // [index, size] pairs
	TreeProofs   [][2]int64 `json:"tree_proofs"`   // [old size, new size] pairs
}

// memHashes is an in-memory tlog.HashReader over the hashes StoredHashes returns.
type memHashes []tlog.Hash

func (m *memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(*m)) {
			return nil, fmt.Errorf("no stored hash %d (have %d)", x, len(*m))
		}
		out[i] = (*m)[x]
	}
	return out, nil
}

func b64s(hashes []tlog.Hash) []string {
	out := make([]string, len(hashes))
	for i, h := range hashes {
		out[i] = h.String()
	}
	return out
}

func treeHash(req *treeRequest) (map[string]any, error) {
	var stored memHashes
	roots := make([]string, 0, len(req.LeavesB64)) // roots[i] is the root of size i+1
	for i, s := range req.LeavesB64 {
		data, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fail("leaves", fmt.Errorf("leaf %d: %v", i, err))
		}
		hashes, err := tlog.StoredHashes(int64(i), data, &stored)
		if err != nil {
			return nil, fail("stored_hashes", err)
		}
		stored = append(stored, hashes...)
		root, err := tlog.TreeHash(int64(i+1), &stored)
		if err != nil {
			return nil, fail("tree_hash", err)
		}
		roots = append(roots, root.String())
	}
	// Go defines the empty tree's hash as all zeros; RFC 9162 as SHA-256 of nothing.
	empty, err := tlog.TreeHash(0, &stored)
	if err != nil {
		return nil, fail("tree_hash", err)
	}
	out := map[string]any{"roots_b64": roots, "empty_root_b64": empty.String()}
	records, trees := [][]string{}, [][]string{}
	for _, p := range req.RecordProofs {
		proof, err := tlog.ProveRecord(p[1], p[0], &stored)
		if err != nil {
			return nil, fail("prove_record", fmt.Errorf("index %d size %d: %v", p[0], p[1], err))
		}
		records = append(records, b64s(proof))
	}
	for _, p := range req.TreeProofs {
		proof, err := tlog.ProveTree(p[1], p[0], &stored)
		if err != nil {
			return nil, fail("prove_tree", fmt.Errorf("old %d new %d: %v", p[0], p[1], err))
		}
		trees = append(trees, b64s(proof))
	}
	out["record_proofs_b64"] = records
	out["tree_proofs_b64"] = trees
	return out, nil
}

// --- open ------------------------------------------------------------------------------------

type openRequest struct {
	Vkeys []string `json:"vkeys"`
	Note  string   `json:"note"`
}

func keyNames(sigs []note.Signature) []string {
	out := make([]string, len(sigs))
	for i, s := range sigs {
		out[i] = fmt.Sprintf("%s+%08x", s.Name, s.Hash)
	}
	return out
}

// openNote opens a note with every given key as a verifier: note.Open checks each signature
// by a known key and sets the others aside.
func openNote(req *openRequest) (map[string]any, error) {
	verifiers := make([]note.Verifier, len(req.Vkeys))
	for i, k := range req.Vkeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fail("vkey", fmt.Errorf("key %d: %v", i, err))
		}
		verifiers[i] = v
	}
	n, err := note.Open([]byte(req.Note), note.VerifierList(verifiers...))
	if err != nil {
		return nil, fail("open", err)
	}
	return map[string]any{
		"text":       n.Text,
		"signed_by":  keyNames(n.Sigs),
		"unverified": keyNames(n.UnverifiedSigs),
	}, nil
}
