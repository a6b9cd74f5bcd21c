package topic

import (
	"container/list"
	"sync"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// Cache memoises Derive for the most recently used key pairs (a bounded
// LRU keyed by the unordered pair). It is safe for concurrent use, and
// concurrent first requests for one pair share a single derivation.
type Cache struct {
	mu      sync.Mutex
	size    int
	order   *list.List // of *cacheEntry, most recently used first
	entries map[cachePair]*list.Element
	derive  func(a, b keys.SharedKey) Topic // Derive; replaced in tests
}

// cachePair is min ‖ max of the two keys.
type cachePair [2 * keys.PublicKeySize]byte

type cacheEntry struct {
	pair  cachePair
	topic Topic
	ready chan struct{} // closed once topic is set
}

// NewCache returns a cache holding at most size pairs (at least 1).
func NewCache(size int) *Cache {
	return &Cache{
		size:    max(size, 1),
		order:   list.New(),
		entries: map[cachePair]*list.Element{},
		derive:  Derive,
	}
}

// Derive returns Derive(a, b), computing it at most once while the pair
// stays in the cache.
func (c *Cache) Derive(a, b keys.SharedKey) Topic {
	lo, hi := orderPair(a, b)
	var pair cachePair
	copy(pair[:], lo[:])
	copy(pair[keys.PublicKeySize:], hi[:])

	c.mu.Lock()
	if el, ok := c.entries[pair]; ok {
		c.order.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		<-e.ready
		return e.topic
	}
	e := &cacheEntry{pair: pair, ready: make(chan struct{})}
	c.entries[pair] = c.order.PushFront(e)
	for c.order.Len() > c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).pair)
	}
	c.mu.Unlock()

	e.topic = c.derive(lo, hi)
	close(e.ready)
	return e.topic
}

// Len is the number of cached pairs.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
