//go:build !unix

package atomicfile

// noFollow: this OS has no O_NOFOLLOW.
const noFollow = 0
