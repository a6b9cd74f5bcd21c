package imap

// ThreadAlgorithm is a threading algorithm.
type ThreadAlgorithm string

const (
	ThreadOrderedSubject ThreadAlgorithm = "ORDEREDSUBJECT"
	ThreadReferences     ThreadAlgorithm = "REFERENCES"
)

// ThreadData is one thread of a THREAD response: a chain of messages, each
// the parent of the next, and the sub-threads under the chain's last one.
type ThreadData struct {
	Chain      []uint32
	SubThreads []ThreadData
}
