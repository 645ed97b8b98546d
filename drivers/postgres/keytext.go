package postgres

import "strings"

// PostgreSQL text cannot hold U+0000, which the key rule
// ([driver.NormalizeKey]) accepts. Keys, fence keys, rate keys and record
// names therefore reach the database in a text form in which every NUL is
// replaced by U+2126 OHM SIGN (nulStandIn). The mapping is injective on
// normalised keys, so two keys never share a row: U+2126 has a singleton
// canonical decomposition (to U+03A9), so it never occurs in NFC text and
// "Ω" typed as either code point is stored as U+03A9. Keys without a NUL —
// every key an earlier release (or the TypeScript library) could store —
// are stored unchanged, so no migration is needed and old and new
// processes agree on every such key. The user_key column holds the same
// form; lookups map it back (fromDBText).
const nulStandIn = '\u2126'

// dbText returns the stored form of a normalised key or a string derived
// from one.
func dbText(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", string(nulStandIn))
}

// fromDBText inverts dbText.
func fromDBText(s string) string {
	if !strings.ContainsRune(s, nulStandIn) {
		return s
	}
	return strings.ReplaceAll(s, string(nulStandIn), "\x00")
}
