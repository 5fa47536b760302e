/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// `npm run dev` proxies the API (default http://127.0.0.1:8000, or $TUNERY_API) so the app keeps relative URLs.
const api = process.env.TUNERY_API ?? 'http://127.0.0.1:8000';

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      '/api': { target: api, ws: true, changeOrigin: true },
      '/v1': { target: api, changeOrigin: true },
    },
  },
  build: {
    chunkSizeWarningLimit: 1500,
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    pool: 'threads',
    maxWorkers: 2,
    css: false,
    testTimeout: 90_000, // shared, slow CI machines; no test asserts on time
  },
});
