package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Role is what an API token allows. Each role allows what the roles below
// it do: admin ⊃ submit ⊃ read.
type Role string

const (
	// RoleRead reads: job status and logs, models, the cluster's state.
	RoleRead Role = "read"
	// RoleSubmit also submits and cancels jobs.
	RoleSubmit Role = "submit"
	// RoleAdmin also changes the cluster: adds and removes coordinators,
	// deletes models.
	RoleAdmin Role = "admin"
)

// Roles lists the roles from the most to the least allowed.
var Roles = []Role{RoleAdmin, RoleSubmit, RoleRead}

// level orders the roles; 0 is no role.
func (r Role) level() int {
	switch r {
	case RoleRead:
		return 1
	case RoleSubmit:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Allows reports whether a token of role r may do what needs role need.
func (r Role) Allows(need Role) bool {
	return r.level() > 0 && need.level() > 0 && r.level() >= need.level()
}

// tokenBytes is the number of random bytes in an API token.
const tokenBytes = 32

// Token describes one API token. The token itself is not kept, only its
// SHA-256.
type Token struct {
	// Name says whose or what the token is, for logs and errors.
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Expires is when the token stops working; zero never.
	Expires time.Time `json:"expires,omitzero"`
}

// Tokens are a cluster's API tokens, by the hex SHA-256 of each token: the
// contents of tokens.json. A Tokens is not safe for concurrent Add and
// Check; Check alone is.
type Tokens struct {
	byHash map[string]Token
}

// NewToken returns a new random API token: 32 bytes from crypto/rand in
// unpadded base64url (43 characters).
func NewToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: new token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken is the key of token in tokens.json: its SHA-256 in hex.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Add records token with its description.
func (t *Tokens) Add(token string, info Token) {
	if t.byHash == nil {
		t.byHash = map[string]Token{}
	}
	t.byHash[HashToken(token)] = info
}

// Check returns nil when token is a known, unexpired token whose role
// allows need, and otherwise ErrNoToken, ErrUnknownToken, ErrExpiredToken
// or ErrForbidden (naming the role needed), wrapped. Only hashes are
// compared, so the time taken says nothing about the tokens held.
func (t *Tokens) Check(token string, need Role) error {
	_, err := t.check(token, need, time.Now())
	return err
}

// Lookup is Check that also returns the token's description.
func (t *Tokens) Lookup(token string, need Role) (Token, error) {
	return t.check(token, need, time.Now())
}

func (t *Tokens) check(token string, need Role, now time.Time) (Token, error) {
	if token == "" {
		return Token{}, ErrNoToken
	}
	info, ok := t.byHash[HashToken(token)]
	if !ok {
		return Token{}, ErrUnknownToken
	}
	if !info.Expires.IsZero() && !now.Before(info.Expires) {
		return Token{}, fmt.Errorf("%w: token %q expired at %s", ErrExpiredToken, info.Name, info.Expires.UTC().Format(time.RFC3339))
	}
	if !info.Role.Allows(need) {
		return Token{}, fmt.Errorf("%w: this needs the %s role; token %q has the %s role", ErrForbidden, need, info.Name, info.Role)
	}
	return info, nil
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.byHash) }

// ParseTokens reads the contents of tokens.json: an object mapping each
// token's hex SHA-256 to its name, role and optional expiry (RFC 3339).
func ParseTokens(b []byte) (*Tokens, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m map[string]Token
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("auth: tokens: %w", err)
	}
	for h, info := range m {
		if raw, err := hex.DecodeString(h); err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("auth: tokens: key %q is not a hex SHA-256", h)
		}
		if info.Role.level() == 0 {
			return nil, fmt.Errorf("auth: tokens: %s: unknown role %q (want admin, submit or read)", h, info.Role)
		}
	}
	return &Tokens{byHash: m}, nil
}

// LoadTokens reads a tokens.json file.
func LoadTokens(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	t, err := ParseTokens(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// MarshalJSON writes the tokens as tokens.json holds them, in hash order.
func (t *Tokens) MarshalJSON() ([]byte, error) {
	if t.byHash == nil {
		return []byte("{}"), nil
	}
	return json.MarshalIndent(t.byHash, "", "  ") // encoding/json sorts map keys
}
