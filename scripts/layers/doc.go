// Package layers holds a test, no code: it keeps imports pointing one way,
// cmd → agent → links (clientapi, cloudclient, iot, updater) → keystore →
// internal, with no link importing another, so each component can be read,
// tested and replaced without the ones beside or above it.
package layers
