package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// profile is the local state: the identity (key file) and the database.
type profile struct {
	paths paths
	key   keyFile
	own   *passport.Passport
	db    *db
}

func (p *profile) close() error { return p.db.close() }

// deviceKey is the device's public key, the one the node lists in users.
func (p *profile) deviceKey() string { return p.key.DeviceKey }

// ownSharedKey is the own passport's current shared key.
func (p *profile) ownSharedKey() (keys.SharedKey, error) {
	k, ok := p.own.SharedKey()
	if !ok {
		return k, fmt.Errorf("own passport %s: %w", p.own.ID(), passport.ErrNoSharedKey)
	}
	return k, nil
}

// openProfile opens the local state. On first run it creates the device
// key and the passport, which needs a new passphrase, and returns the
// secrets too (nil otherwise).
func (a *app) openProfile(ctx context.Context) (*profile, *secrets, error) {
	pths, err := statePaths(a.opts.dir, a.getenv)
	if err != nil {
		return nil, nil, fmt.Errorf("local state: %w", err)
	}
	if err := makeStateDirs(pths); err != nil {
		return nil, nil, err
	}
	var created *secrets
	kf, err := readKeyFile(pths.keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		var s secrets
		kf, s, err = a.firstRun(pths.keyFile)
		created = &s
	}
	if err != nil {
		return nil, nil, err
	}
	own, err := kf.ownPassport(time.Now())
	if err != nil {
		return nil, nil, err
	}
	d, err := openDB(ctx, pths.db)
	if err != nil {
		return nil, nil, err
	}
	return &profile{paths: pths, key: kf, own: own, db: d}, created, nil
}

// firstRun creates the device key (upstream's random 32-byte seed) and a
// passport whose shared key is sealed to it under a new passphrase, and
// writes the key file.
func (a *app) firstRun(path string) (keyFile, secrets, error) {
	var s secrets
	fmt.Fprintf(a.stderr, "No device key in %s yet: creating one and a passport.\n", path)
	pass, err := a.passphrase(true)
	if err != nil {
		return keyFile{}, s, err
	}
	if pass == "" {
		return keyFile{}, s, errors.New("first run: the passphrase must not be empty")
	}
	alias := a.opts.alias
	if alias == "" {
		alias = defaultAlias()
	}
	if _, err := rand.Read(s.seed[:]); err != nil {
		return keyFile{}, s, fmt.Errorf("first run: %w", err)
	}
	own, shared, err := passport.Create(rand.Reader, time.Now(), alias, s.device(), keys.PassphraseSeed(pass))
	if err != nil {
		return keyFile{}, s, fmt.Errorf("first run: %w", err)
	}
	s.shared = shared
	kf, err := sealKeyFile(rand.Reader, pass, alias, s, own)
	if err != nil {
		return keyFile{}, s, err
	}
	if err := writeKeyFile(path, kf); err != nil {
		return keyFile{}, s, err
	}
	fmt.Fprintf(a.stderr, "Passport:   %s\nDevice key: %s\n"+
		"Add this device key to `users` in your node's configuration and restart asmtpd: the node serves only the devices listed there.\n",
		own.ID(), kf.DeviceKey)
	return kf, s, nil
}

// defaultAlias names the device after the host, as a passport alias
// allows: printable ASCII, at most passport.MaxAliasLen bytes.
func defaultAlias() string {
	host, _ := os.Hostname()
	alias := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, host)
	if alias == "" {
		alias = "asmtp-cli"
	}
	return alias[:min(len(alias), passport.MaxAliasLen)]
}

// unlock decrypts the secrets with the passphrase and checks the shared
// secret is the own passport's current one. (The passport only changes
// when a device rotates its shared key, which this client does not do.)
func (p *profile) unlock(pass string) (secrets, error) {
	s, err := p.key.open(pass)
	if err != nil {
		return s, err
	}
	current, err := p.ownSharedKey()
	if err != nil {
		return s, err
	}
	if s.shared.Public() != current {
		return s, fmt.Errorf("key file: the sealed shared secret is not the passport's current shared key %s", current)
	}
	return s, nil
}

// importContact adds the passport in data (PassportBlocks) as a contact
// named petname and derives the topic of the conversation with them.
func (p *profile) importContact(ctx context.Context, data []byte, petname string) (contact, error) {
	if err := checkPetname(petname); err != nil {
		return contact{}, err
	}
	theirs, err := passport.Import(data, time.Now())
	if err != nil {
		return contact{}, err
	}
	if theirs.ID() == p.own.ID() {
		return contact{}, fmt.Errorf("passport %s is your own", theirs.ID())
	}
	if c, ok, err := p.db.contactByPassport(ctx, theirs.ID()); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("passport %s is already your contact %q", theirs.ID(), c.petname)
		}
		return contact{}, err
	}
	their, ok := theirs.SharedKey()
	if !ok {
		return contact{}, fmt.Errorf("passport %s: %w: nobody can write to it yet", theirs.ID(), passport.ErrNoSharedKey)
	}
	ours, err := p.ownSharedKey()
	if err != nil {
		return contact{}, err
	}
	c := contact{
		petname:   petname,
		passport:  theirs.ID(),
		blocks:    theirs.Export(),
		sharedKey: their,
		topic:     topic.Derive(ours, their),
	}
	if err := p.db.addContact(ctx, c); err != nil {
		return contact{}, err
	}
	return c, nil
}

// checkPetname accepts a name that can be typed as one word and is not
// mistaken for a passport id.
func checkPetname(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("petname %q: want 1 to 64 characters", name)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == '@' {
			return fmt.Errorf("petname %q: no spaces, control characters or @", name)
		}
	}
	if _, err := passport.ParseHash(name); err == nil {
		return fmt.Errorf("petname %q looks like a passport id", name)
	}
	return nil
}
