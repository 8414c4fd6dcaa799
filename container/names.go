package container

import (
	"crypto/rand"
	"math/big"
)

// Names are made as Docker makes them: an adjective and the surname of a
// scientist or engineer, joined by an underscore.
var (
	adjectives = []string{
		"admiring", "agile", "amazing", "awesome", "blissful", "bold", "brave", "busy", "calm", "charming",
		"clever", "compassionate", "confident", "cool", "crazy", "dazzling", "determined", "dreamy", "eager", "ecstatic",
		"elastic", "elegant", "epic", "exciting", "fervent", "festive", "flamboyant", "focused", "friendly", "frosty",
		"gallant", "gifted", "goofy", "gracious", "happy", "hardcore", "heuristic", "hopeful", "hungry", "infallible",
		"inspiring", "intelligent", "jolly", "jovial", "keen", "kind", "laughing", "loving", "lucid", "magical",
		"modest", "musing", "mystifying", "naughty", "nervous", "nice", "nifty", "nostalgic", "objective", "optimistic",
		"peaceful", "pensive", "practical", "priceless", "quirky", "quizzical", "relaxed", "reverent", "romantic", "serene",
		"sharp", "silly", "sleepy", "stoic", "strange", "suspicious", "sweet", "tender", "thirsty", "trusting",
		"unruffled", "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful", "xenodochial", "youthful", "zealous",
	}
	surnames = []string{
		"agnesi", "allen", "archimedes", "babbage", "bardeen", "bartik", "bassi", "bell", "bohr", "boole",
		"borg", "bose", "brahmagupta", "cannon", "carson", "cerf", "chandrasekhar", "clarke", "curie", "darwin",
		"dijkstra", "dirac", "einstein", "elion", "euclid", "euler", "faraday", "fermat", "fermi", "feynman",
		"franklin", "galileo", "gauss", "goldberg", "goodall", "hamilton", "hawking", "heisenberg", "hodgkin", "hopper",
		"hypatia", "jackson", "johnson", "kapitsa", "keller", "kepler", "knuth", "lamport", "lovelace", "liskov",
		"lumiere", "maxwell", "mayer", "mccarthy", "meitner", "mendel", "mirzakhani", "morse", "napier", "newton",
		"noether", "noyce", "pascal", "pasteur", "perlman", "planck", "poincare", "ramanujan", "ride", "ritchie",
		"rosalind", "sammet", "shannon", "shockley", "sinoussi", "stonebraker", "tesla", "thompson", "torvalds", "turing",
		"varahamihira", "volhard", "wiles", "williams", "wozniak", "wright", "yalow", "yonath", "zhukovsky", "zuse",
	}
)

// RandomName returns a name such as "focused_turing".
func RandomName() string {
	return pick(adjectives) + "_" + pick(surnames)
}

func pick(words []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(words))))
	if err != nil {
		return words[0]
	}
	return words[n.Int64()]
}
