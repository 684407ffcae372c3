// Package store keeps rbnode's data in Badger: signed documents exactly as
// received (add-only, content-addressed), their verification results, the
// public keys and trust set, and a bounded log of rejected input.
//
// Every key starts with the layout version ("1/"), so a later layout can be
// added beside this one and migrated. The layout:
//
//	1/m/layout                              "1"
//	1/d/<id>                                document record (JSON), never rewritten
//	1/v/<id>                                its verification (JSON), rewritten when keys change
//	1/r/<project>\x00<version>\x00<id>      release index
//	1/n/<version>\x00<project>              which projects have a version
//	1/a/<artifact>\x00<project>\x00<version> which releases name an artifact
//	1/h/<sha256>\x00<project>\x00<version>  which releases carry a hash
//	1/i/<key id>/<id>                       documents by issuer key id
//	1/k/<fingerprint>                       a public key (minimal binary certificate)
//	1/t/<fingerprint>                       a trusted fingerprint (JSON)
//	1/x/<seq>                               a rejection (JSON); 1/y/<version>\x00<seq> indexes it
//	1/s/<name>                              small settings and counters
//
// <id> is the 32-byte document id; text parts are validated names, which
// never contain the \x00 separator.
package store
