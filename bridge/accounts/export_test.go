package accounts

import "database/sql"

// What the package's external tests (package accounts_test, which use
// accountstest) look at inside.
const (
	PassportAlias = passportAlias
	MaxVCardLine  = maxVCardLine
)

// DB is the registry's database, for tests that damage or inspect it.
func (r *Registry) DB() *sql.DB { return r.db }

// Migrations and PrepareDataFile let the migration test make a registry
// file of an old schema version.
var (
	Migrations      = migrations
	PrepareDataFile = prepareDataFile
)
