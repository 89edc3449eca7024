package ratelimit

import (
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// MaxBuckets bounds the buckets one Distinct rule keeps (see the package
// documentation for what happens beyond it).
const MaxBuckets = 10_000

const shards = 16

// params are a rule's bucket parameters. Token amounts are scaled by period
// (in nanoseconds): a bucket holds level/period tokens, gains rate scaled
// units per nanosecond, and one request costs period scaled units. With
// period at most an hour and rate and burst at most
// model.MaxRateLimitRequests, every amount fits in an int64.
type params struct {
	period   int64 // the unit, in nanoseconds: the cost of one request
	rate     int64 // requests per unit: scaled units gained per nanosecond
	capacity int64 // burst * period
	burst    int
}

// bucket is one token bucket. Callers hold the lock that guards it.
type bucket struct {
	level int64     // scaled tokens, 0..capacity
	last  time.Time // when level was last brought up to date
}

func (p *params) full(now time.Time) bucket { return bucket{level: p.capacity, last: now} }

// refill brings b up to now. Time never goes backwards for a bucket: a now
// before b.last (callers racing with slightly older clocks) adds nothing.
func (b *bucket) refill(p *params, now time.Time) {
	dt := int64(now.Sub(b.last))
	if dt <= 0 {
		return
	}
	b.last = now
	if room := p.capacity - b.level; dt >= room/p.rate+1 {
		b.level = p.capacity
	} else {
		b.level += dt * p.rate // dt <= room/rate: at most capacity, no overflow
	}
}

// result is what taking a token from one bucket gave.
type result struct {
	allowed   bool
	remaining int           // whole tokens left
	wait      time.Duration // until a token is there, when !allowed
}

// take refills b and takes one token if there is one.
func (b *bucket) take(p *params, now time.Time) result {
	b.refill(p, now)
	if b.level >= p.period {
		b.level -= p.period
		return result{allowed: true, remaining: int(b.level / p.period)}
	}
	return result{wait: b.waitFor(p)}
}

// waitFor is how long until b has a whole token, rounded up to the
// nanosecond: 0 when it has one.
func (b *bucket) waitFor(p *params) time.Duration {
	missing := p.period - b.level
	if missing <= 0 {
		return 0
	}
	return time.Duration((missing + p.rate - 1) / p.rate)
}

// give puts back a token taken by a request that another rule denied.
func (b *bucket) give(p *params, now time.Time) {
	b.refill(p, now)
	b.level = min(b.level+p.period, p.capacity)
}

// key identifies a client's bucket in a Distinct rule: the parts the rule
// is Distinct on, the others zero.
type key struct {
	ip        netip.Addr
	principal string
	header    string // the Distinct headers' values (see distinctKey)
}

// state is the buckets of one rule: one shared bucket, or for a Distinct
// rule a bounded map per shard. Limiters share a state through Inherit.
type state struct {
	p params

	mu     sync.Mutex // guards single
	single bucket
	fresh  bool // single has not been used yet

	seed   maphash.Seed
	shards []shard // nil unless Distinct
}

// shard is an LRU-bounded map of buckets.
type shard struct {
	mu         sync.Mutex
	m          map[key]*entry
	head, tail *entry // most and least recently used
	max        int
	_          [64]byte // keep shards' locks on separate cache lines
}

type entry struct {
	k          key
	b          bucket
	prev, next *entry
}

func newState(p params, distinct bool, maxBuckets int) *state {
	s := &state{p: p, fresh: true}
	if distinct {
		s.seed = maphash.MakeSeed()
		s.shards = make([]shard, shards)
		per := max(maxBuckets/shards, 1)
		for i := range s.shards {
			s.shards[i] = shard{m: map[key]*entry{}, max: per}
		}
	}
	return s
}

func (s *state) shard(k *key) *shard {
	h := maphash.String(s.seed, k.header) ^ maphash.String(s.seed, k.principal)*31
	if k.ip.IsValid() {
		a := k.ip.As16()
		h ^= maphash.Bytes(s.seed, a[:]) * 131
	}
	return &s.shards[h%shards]
}

// take takes a token from the bucket for k (creating it full if new).
func (s *state) take(k *key, now time.Time) result {
	if s.shards == nil {
		s.mu.Lock()
		if s.fresh {
			s.single, s.fresh = s.p.full(now), false
		}
		r := s.single.take(&s.p, now)
		s.mu.Unlock()
		return r
	}
	sh := s.shard(k)
	sh.mu.Lock()
	e := sh.get(k)
	if e == nil {
		e = sh.add(k, s.p.full(now))
	}
	r := e.b.take(&s.p, now)
	sh.mu.Unlock()
	return r
}

// give returns a token to the bucket for k, if it still exists.
func (s *state) give(k *key, now time.Time) {
	if s.shards == nil {
		s.mu.Lock()
		s.single.give(&s.p, now)
		s.mu.Unlock()
		return
	}
	sh := s.shard(k)
	sh.mu.Lock()
	if e := sh.m[*k]; e != nil {
		e.b.give(&s.p, now)
	}
	sh.mu.Unlock()
}

// wait says how long until the bucket for k has a token, without taking
// one; 0 for a bucket that does not exist (it would start full).
func (s *state) wait(k *key, now time.Time) time.Duration {
	if s.shards == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fresh {
			return 0
		}
		s.single.refill(&s.p, now)
		return s.single.waitFor(&s.p)
	}
	sh := s.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[*k]
	if e == nil {
		return 0
	}
	e.b.refill(&s.p, now)
	return e.b.waitFor(&s.p)
}

// buckets counts the buckets s holds.
func (s *state) buckets() int {
	if s.shards == nil {
		return 1
	}
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].m)
		s.shards[i].mu.Unlock()
	}
	return n
}

// get returns the entry for k, marking it most recently used.
func (sh *shard) get(k *key) *entry {
	e := sh.m[*k]
	if e != nil && e != sh.head {
		sh.unlink(e)
		sh.pushFront(e)
	}
	return e
}

// add inserts a new entry for k, evicting the least recently used one when
// the shard is full. Key strings are copied so that a bucket does not keep
// a request's memory alive.
func (sh *shard) add(k *key, b bucket) *entry {
	if len(sh.m) >= sh.max {
		old := sh.tail
		sh.unlink(old)
		delete(sh.m, old.k)
	}
	e := &entry{k: key{ip: k.ip, principal: strings.Clone(k.principal), header: strings.Clone(k.header)}, b: b}
	sh.m[e.k] = e
	sh.pushFront(e)
	return e
}

func (sh *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		sh.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		sh.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (sh *shard) pushFront(e *entry) {
	e.next = sh.head
	if sh.head != nil {
		sh.head.prev = e
	}
	sh.head = e
	if sh.tail == nil {
		sh.tail = e
	}
}
