package jwtauth

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// tokenCache remembers verified tokens by the SHA-256 of their text, so
// that a repeat request skips the signature check. An entry is used only
// while its exp has not passed and while the key that verified it is
// still in the key set: a key removed from the JWK Set takes its tokens
// with it at the refresh that removes it. The least recently used entry
// goes when the cache is full.
type tokenCache struct {
	size int

	mu      sync.Mutex // guards entries and lru
	entries map[[sha256.Size]byte]*list.Element
	lru     *list.List // of *cacheEntry, most recent first
}

type cacheEntry struct {
	key        [sha256.Size]byte
	identity   auth.Identity
	expires    time.Time
	thumbprint string // of the key that verified the token
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{size: size, entries: make(map[[sha256.Size]byte]*list.Element), lru: list.New()}
}

// get returns the identity of a token verified before, when its entry is
// still valid at now under keys.
func (c *tokenCache) get(h [sha256.Size]byte, now time.Time, keys *keySet) (auth.Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[h]
	if !ok {
		return auth.Identity{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) || keys.byThumb[e.thumbprint] == nil {
		c.lru.Remove(el)
		delete(c.entries, h)
		return auth.Identity{}, false
	}
	c.lru.MoveToFront(el)
	return e.identity, true
}

func (c *tokenCache) put(h [sha256.Size]byte, id auth.Identity, thumbprint string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[h]; ok {
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.size {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
	c.entries[h] = c.lru.PushFront(&cacheEntry{key: h, identity: id, expires: id.Expires, thumbprint: thumbprint})
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
