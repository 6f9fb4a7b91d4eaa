package auth

import (
	"errors"
	"strings"
)

// Errors of a token check. Test for them with errors.Is; the returned
// errors wrap them with what was wrong.
var (
	// ErrNoToken: a request carried no API token.
	ErrNoToken = errors.New("auth: no API token")
	// ErrUnknownToken: the API token is not one the cluster issued.
	ErrUnknownToken = errors.New("auth: unknown API token")
	// ErrExpiredToken: the API token is past its expiry time.
	ErrExpiredToken = errors.New("auth: expired API token")
	// ErrForbidden: the API token's role does not allow the request.
	ErrForbidden = errors.New("auth: forbidden")
)

// Describe is err's text for the caller of an API, without this package's
// prefix: "expired API token: token "ci" expired at …".
func Describe(err error) string { return strings.TrimPrefix(err.Error(), "auth: ") }
