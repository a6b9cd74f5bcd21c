package accounts

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/internal/sqlitedb"
	"github.com/asmtp/asmtp/mailstore"
)

// MaxAccountNameLen bounds account names (they are IMAP/SMTP user names).
const MaxAccountNameLen = 64

// passportAlias is the alias of the bridge's device key in its passports.
// Aliases are public, so it is not the account name.
const passportAlias = "bridge"

// Sealed-field names, part of each sealed value's additional data.
const (
	fieldDeviceSeed   = "device seed"
	fieldPassportSeed = "passport seed"
)

// metaNodeID is the meta key holding the id of the node key that sealed
// the secrets, so a wrong key password is reported as such.
const metaNodeID = "node_id"

// dummyHash is checked when a login names no account, and after a
// generated token's fast check (checkPassword), so that every login costs
// one Argon2id evaluation with the chosen-password parameters. It is the
// hash of 32 random bytes nobody kept, so no password matches it.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$NXHhhgknwlxd3Fzkoad8ew$obHuoPaqXtWheQyUYfDol4kuYBQ2mU7JZLaks3ycmuo"

var (
	// ErrNoAccount: no account has that name.
	ErrNoAccount = errors.New("no such account")
	// ErrAccountExists: the name is taken.
	ErrAccountExists = errors.New("account already exists")
	// ErrBadCredentials: a login with a wrong user name or password. It is
	// the IMAP server's, so the server treats it as a failed login.
	ErrBadCredentials = auth.ErrBadCredentials
)

// Account is a local identity the bridge serves: a device key that is a
// user of the node, and the passport it created. Its secrets are read
// with (*Registry).Secrets.
type Account struct {
	Name      string // lower case; the IMAP/SMTP user name and mailstore account
	Passport  passport.Hash
	Blocks    []byte         // the passport's PassportBlocks, as uploaded to the node
	Device    keys.PublicKey // the node user key
	CreatedAt time.Time
}

// Address is the account's pseudo-address.
func (a Account) Address(domain string) Address { return NewAddress(a.Passport, domain) }

// AccountSecrets are an account's secrets, unsealed.
type AccountSecrets struct {
	Device       ed25519.PrivateKey // master key of the passport and node user key
	PassportSeed keys.Seed          // the psk the shared secret is sealed under in the passport
	SharedSecret keys.SharedSecret  // the passport's current shared secret: opens and signs mail
}

// MailAccounts creates an account's mailboxes; *mailstore.DB is one.
// Creating an existing account must fail with mailstore.ErrAccountExists
// and change nothing.
type MailAccounts interface {
	CreateAccount(ctx context.Context, name string) error
}

// CheckAccountName returns name in lower case if it is a valid account
// name: 1 to MaxAccountNameLen characters from a-z, 0-9, '.', '_' and '-',
// starting with a letter or digit.
func CheckAccountName(name string) (string, error) {
	name = strings.ToLower(name)
	if name == "" || len(name) > MaxAccountNameLen || !isAlnum(name[0]) {
		return "", fmt.Errorf("account name %q: want 1 to %d characters, starting with a letter or digit", name, MaxAccountNameLen)
	}
	for _, c := range []byte(name) {
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return "", fmt.Errorf("account name %q: %q is not allowed (letters, digits, '.', '_' and '-')", name, c)
		}
	}
	return name, nil
}

// CreateAccount makes a new account: a fresh device key, a passport for it
// (its shared secret sealed in the passport under a random passport seed),
// the account's mailboxes in mail, and finally the account row. The
// account exists once that row commits and not before, so a crash at any
// point leaves either no account or a whole one; mailboxes left by a crash
// belong to no account and are reused by the next CreateAccount of the
// name.
//
// nodeKey seals the device key and passport seed at rest. password is the
// bridge password; when empty a random token is made (NewToken). The
// password in effect is returned: it is stored only as a hash.
func (r *Registry) CreateAccount(ctx context.Context, mail MailAccounts, nodeKey ed25519.PrivateKey, name, password string) (Account, string, error) {
	name, err := CheckAccountName(name)
	if err != nil {
		return Account{}, "", err
	}
	fail := func(err error) (Account, string, error) {
		return Account{}, "", fmt.Errorf("create account %s: %w", name, err)
	}
	s, err := newSealer(nodeKey)
	if err != nil {
		return fail(err)
	}
	if err := checkNodeID(ctx, r.db, s.node); err != nil {
		return fail(err)
	}
	if _, err := r.Account(ctx, name); err == nil {
		return fail(ErrAccountExists)
	} else if !errors.Is(err, ErrNoAccount) {
		return fail(err)
	}
	hash, password, err := newPasswordHash(password)
	if err != nil {
		return fail(err)
	}
	_, device, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fail(err)
	}
	var psk keys.Seed
	if _, err := rand.Read(psk[:]); err != nil {
		return fail(err)
	}
	now := time.Now()
	p, _, err := passport.Create(rand.Reader, now, passportAlias, device, psk)
	if err != nil {
		return fail(err)
	}
	sealedDevice, err := s.seal(name, fieldDeviceSeed, device.Seed())
	if err != nil {
		return fail(err)
	}
	sealedPSK, err := s.seal(name, fieldPassportSeed, psk[:])
	if err != nil {
		return fail(err)
	}
	if err := mail.CreateAccount(ctx, name); err != nil && !errors.Is(err, mailstore.ErrAccountExists) {
		return fail(err)
	}
	a := Account{Name: name, Passport: p.ID(), Blocks: p.Export(), Device: keys.Public(device), CreatedAt: unixTime(now.Unix())}
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		if err := checkNodeID(ctx, tx, s.node); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (name, passport_id, passport_blocks, device_key,
			sealed_device_seed, sealed_passport_seed, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.Name, a.Passport[:], a.Blocks, a.Device[:], sealedDevice, sealedPSK, hash, a.CreatedAt.Unix())
		if isUniqueViolation(err) {
			return ErrAccountExists
		}
		return err
	})
	if err != nil {
		return fail(err)
	}
	return a, password, nil
}

// newPasswordHash hashes password, or a new token when it is empty, and
// returns the hash and the password in effect.
func newPasswordHash(password string) (hash, effective string, err error) {
	if password != "" {
		hash, err = hashChosen(password)
		return hash, password, err
	}
	if password, err = NewToken(); err != nil {
		return "", "", err
	}
	hash, err = hashToken(password)
	return hash, password, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// checkNodeID fails with ErrWrongNodeKey if the registry's secrets were
// sealed by another node key. Inside a transaction it records node as
// the sealing key when none is yet.
func checkNodeID(ctx context.Context, q querier, node keys.PublicKey) error {
	var stored string
	err := q.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", metaNodeID).Scan(&stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if tx, ok := q.(*sql.Tx); ok {
			_, err = tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?)", metaNodeID, node.String())
		} else {
			err = nil
		}
		return err
	case err != nil:
		return err
	case stored != node.String():
		return fmt.Errorf("the key password derives node %s but the bridge's secrets belong to node %s: %w", node, stored, ErrWrongNodeKey)
	}
	return nil
}

// CheckNodeKey fails with ErrWrongNodeKey when accounts exist whose
// secrets nodeKey cannot open; asmtpd checks it at start.
func (r *Registry) CheckNodeKey(ctx context.Context, nodeKey ed25519.PrivateKey) error {
	return checkNodeID(ctx, r.db, keys.Public(nodeKey))
}

const accountColumns = "name, passport_id, passport_blocks, device_key, created_at"

func scanAccount(row interface{ Scan(...any) error }) (Account, error) {
	var a Account
	var id, device []byte
	var created int64
	if err := row.Scan(&a.Name, &id, &a.Blocks, &device, &created); err != nil {
		return a, err
	}
	if len(id) != len(a.Passport) || len(device) != len(a.Device) {
		return a, fmt.Errorf("account %s: malformed row", a.Name)
	}
	copy(a.Passport[:], id)
	copy(a.Device[:], device)
	a.CreatedAt = unixTime(created)
	return a, nil
}

// Accounts lists the accounts by name.
func (r *Registry) Accounts(ctx context.Context) ([]Account, error) {
	out, err := sqlitedb.Select(ctx, r.db, scanAccount, "SELECT "+accountColumns+" FROM accounts ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return out, nil
}

// Account returns the account called name (any case).
func (r *Registry) Account(ctx context.Context, name string) (Account, error) {
	return accountByName(ctx, r.db, strings.ToLower(name))
}

func accountByName(ctx context.Context, q querier, name string) (Account, error) {
	a, err := scanAccount(q.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM accounts WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("account %s: %w", name, ErrNoAccount)
	}
	if err != nil {
		return a, fmt.Errorf("account %s: %w", name, err)
	}
	return a, nil
}

// ResetPassword replaces an account's bridge password, as CreateAccount
// sets it, and returns the new one. The old one stops working at once.
func (r *Registry) ResetPassword(ctx context.Context, name, password string) (string, error) {
	hash, password, err := newPasswordHash(password)
	if err != nil {
		return "", fmt.Errorf("reset password of %s: %w", name, err)
	}
	res, err := r.db.ExecContext(ctx, "UPDATE accounts SET password_hash = ? WHERE name = ?", hash, strings.ToLower(name))
	if err != nil {
		return "", fmt.Errorf("reset password of %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return "", fmt.Errorf("reset password of %s: %w", name, ErrNoAccount)
	}
	return password, nil
}

// Authenticate checks a bridge login. login is the account name or the
// account's pseudo-address under domain, in any case. It returns the
// account name, ErrBadCredentials for an unknown login or a wrong
// password, or another error when the check itself failed. It is not rate
// limited: the servers go through Authenticator, which is.
func (r *Registry) Authenticate(ctx context.Context, login, password, domain string) (string, error) {
	name, hash, err := r.loginHash(ctx, login, domain)
	if err != nil {
		return "", err
	}
	ok, err := checkPassword(hash, password)
	switch {
	case err != nil:
		return "", fmt.Errorf("authenticate %s: %w", name, err)
	case !ok || name == "":
		return "", ErrBadCredentials
	}
	return name, nil
}

// loginHash finds the account login names and its password hash; for a
// login that names no account it returns "" and dummyHash, which no
// password matches and which costs as much to check as a real one.
func (r *Registry) loginHash(ctx context.Context, login, domain string) (name, hash string, err error) {
	where, arg := "name = ?", any(strings.ToLower(login))
	if strings.Contains(login, "@") {
		addr, err := ParseAddress(login, domain)
		if err != nil {
			return "", dummyHash, nil
		}
		where, arg = "passport_id = ?", addr.Passport[:]
	}
	err = r.db.QueryRowContext(ctx, "SELECT name, password_hash FROM accounts WHERE "+where, arg).Scan(&name, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", dummyHash, nil
	}
	if err != nil {
		return "", "", fmt.Errorf("authenticate: %w", err)
	}
	return name, hash, nil
}

// Secrets unseals an account's secrets with the node key and recovers its
// current shared secret from its passport. The shared secret is not
// stored: unsealing it from the passport each time means it always
// matches the passport's current shared key.
func (r *Registry) Secrets(ctx context.Context, nodeKey ed25519.PrivateKey, name string) (AccountSecrets, error) {
	var out AccountSecrets
	fail := func(err error) (AccountSecrets, error) { return out, fmt.Errorf("secrets of %s: %w", name, err) }
	s, err := newSealer(nodeKey)
	if err != nil {
		return fail(err)
	}
	if err := checkNodeID(ctx, r.db, s.node); err != nil {
		return fail(err)
	}
	var blocks, device, sealedDevice, sealedPSK []byte
	err = r.db.QueryRowContext(ctx, "SELECT name, passport_blocks, device_key, sealed_device_seed, sealed_passport_seed FROM accounts WHERE name = ?",
		strings.ToLower(name)).Scan(&name, &blocks, &device, &sealedDevice, &sealedPSK)
	if errors.Is(err, sql.ErrNoRows) {
		return fail(ErrNoAccount)
	}
	if err != nil {
		return fail(err)
	}
	seed, err := s.open(name, fieldDeviceSeed, sealedDevice)
	if err != nil {
		return fail(err)
	}
	psk, err := s.open(name, fieldPassportSeed, sealedPSK)
	if err != nil {
		return fail(err)
	}
	if len(seed) != ed25519.SeedSize || len(psk) != len(out.PassportSeed) {
		return fail(errors.New("malformed sealed secrets"))
	}
	out.Device = ed25519.NewKeyFromSeed(seed)
	copy(out.PassportSeed[:], psk)
	if pub := keys.Public(out.Device); string(pub[:]) != string(device) {
		return fail(errors.New("the device seed does not match the device key"))
	}
	p, err := passport.Import(blocks, time.Now())
	if err != nil {
		return fail(err)
	}
	if out.SharedSecret, err = p.UnsealSharedSecret(out.Device, out.PassportSeed); err != nil {
		return fail(err)
	}
	return out, nil
}
