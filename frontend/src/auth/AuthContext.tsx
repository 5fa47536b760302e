// Who is signed in: the token (localStorage) and the user it belongs to.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from 'react';
import { api, call, type Schemas } from '../api/client';
import { getToken, onTokenChange, setToken } from './token';

interface AuthValue {
  token: string | null;
  user: Schemas['UserPublic'] | undefined;
  signIn: (email: string, password: string) => Promise<void>;
  signOut: () => void;
}

const AuthContext = createContext<AuthValue | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [token, setTokenState] = useState<string | null>(getToken);
  const queryClient = useQueryClient();
  useEffect(
    () =>
      onTokenChange((next) => {
        setTokenState(next);
        if (!next) queryClient.clear();
      }),
    [queryClient],
  );
  // another tab signed in or out
  useEffect(() => {
    const listener = (event: StorageEvent) => {
      if (event.key === 'tunery.token') setTokenState(event.newValue);
    };
    window.addEventListener('storage', listener);
    return () => window.removeEventListener('storage', listener);
  }, []);
  const me = useQuery({
    queryKey: ['me', token],
    queryFn: () => call(api.GET('/api/auth/me')),
    enabled: Boolean(token),
    staleTime: 60_000,
  });
  const signIn = useCallback(async (email: string, password: string) => {
    const answer = await call(api.POST('/api/auth/login', { body: { email, password } }));
    setToken(answer.access_token);
  }, []);
  const signOut = useCallback(() => setToken(null), []);
  const value = useMemo(() => ({ token, user: me.data, signIn, signOut }), [token, me.data, signIn, signOut]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth outside AuthProvider');
  return value;
}
