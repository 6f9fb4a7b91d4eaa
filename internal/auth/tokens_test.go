package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokensCheck(t *testing.T) {
	var tokens Tokens
	tokens.Add("admin-token", Token{Name: "ops", Role: RoleAdmin})
	tokens.Add("submit-token", Token{Name: "ci", Role: RoleSubmit, Expires: time.Now().Add(time.Hour)})
	tokens.Add("read-token", Token{Name: "dashboard", Role: RoleRead})
	tokens.Add("old-token", Token{Name: "intern", Role: RoleAdmin, Expires: time.Now().Add(-time.Minute)})
	for _, c := range []struct {
		token string
		need  Role
		want  error
		say   string
	}{
		{"admin-token", RoleAdmin, nil, ""},
		{"admin-token", RoleRead, nil, ""},
		{"submit-token", RoleSubmit, nil, ""},
		{"submit-token", RoleRead, nil, ""},
		{"read-token", RoleRead, nil, ""},
		{"", RoleRead, ErrNoToken, ""},
		{"guess", RoleRead, ErrUnknownToken, ""},
		{"old-token", RoleRead, ErrExpiredToken, `token "intern" expired at`},
		{"read-token", RoleSubmit, ErrForbidden, `this needs the submit role; token "dashboard" has the read role`},
		{"submit-token", RoleAdmin, ErrForbidden, "this needs the admin role"},
		{"admin-token", Role("root"), ErrForbidden, `needs the root role`},
	} {
		err := tokens.Check(c.token, c.need)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("Check(%q, %s) = %v, want %v", c.token, c.need, err, c.want)
			continue
		}
		if c.say != "" && !strings.Contains(err.Error(), c.say) {
			t.Errorf("Check(%q, %s) = %q, want it to say %q", c.token, c.need, err, c.say)
		}
	}
	info, err := tokens.Lookup("submit-token", RoleRead)
	if err != nil || info.Name != "ci" || info.Role != RoleSubmit {
		t.Errorf("Lookup = %+v, %v", info, err)
	}
}

func TestTokensRoundTrip(t *testing.T) {
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(raw) != 32 {
		t.Fatalf("NewToken() = %q: %d bytes, %v", tok, len(raw), err)
	}
	var tokens Tokens
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tokens.Add(tok, Token{Name: "ci", Role: RoleSubmit, Expires: expires})
	tokens.Add("other", Token{Name: "ops", Role: RoleAdmin})
	b, err := tokens.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), tok) {
		t.Fatalf("tokens.json holds a plaintext token:\n%s", b)
	}
	back, err := ParseTokens(b)
	if err != nil {
		t.Fatal(err)
	}
	info, err := back.Lookup(tok, RoleSubmit)
	if err != nil || !info.Expires.Equal(expires) {
		t.Errorf("after a round trip: %+v, %v\n%s", info, err, b)
	}
	if strings.Count(string(b), "expires") != 1 {
		t.Errorf("a token without expiry has an expires field:\n%s", b)
	}
}

func TestParseTokensErrors(t *testing.T) {
	hash := HashToken("x")
	for _, c := range []struct{ json, want string }{
		{`[]`, "cannot unmarshal array"},
		{`{"abc": {"name": "x", "role": "read"}}`, `key "abc" is not a hex SHA-256`},
		{`{"` + hash + `": {"name": "x", "role": "root"}}`, `unknown role "root"`},
		{`{"` + hash + `": {"name": "x", "role": "read", "scope": "all"}}`, `unknown field "scope"`},
	} {
		_, err := ParseTokens([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseTokens(%s) = %v, want %q", c.json, err, c.want)
		}
	}
}
