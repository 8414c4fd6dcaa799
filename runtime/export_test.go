package runtime

// Compiles is how many filters c compiled for want of one it kept.
func (c *Cache) Compiles() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.compiles
}
