package config

import "strings"

// nearest returns the candidate closest to name by edit distance, ignoring case, if it is close
// enough to be the name meant: at most one edit for short names, up to three for long ones.
// It returns "" when none is. Each comparison costs O(len(name)·len(candidate)).
func nearest(name string, candidates []string) string {
	limit := min(1+len(name)/5, 3)
	best, bestDist := "", limit+1
	lower := strings.ToLower(name)
	for _, c := range candidates {
		if c == name {
			continue
		}
		if d := editDistance(lower, strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// didYouMean returns " (did you mean <nearest>?)", or "" when no candidate is near name.
func didYouMean(name string, candidates []string) string {
	if s := nearest(name, candidates); s != "" {
		return " (did you mean " + s + "?)"
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, in bytes: the fewest insertions,
// deletions and substitutions that turn a into b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
