// Renders a page inside the app's providers, signed in, in project "p1", at a route.
import { render } from '@testing-library/react';
import type { ReactElement } from 'react';
import { MemoryRouter, Route, Routes } from 'react-router';
import { makeQueryClient, Providers } from '../App';
import { setToken } from '../auth/token';
import { ProjectProvider } from '../project/ProjectContext';
import { useProject } from '../project/ProjectContext';

function WhenProject({ children }: { children: ReactElement }) {
  const { projectId } = useProject();
  return projectId ? children : null;
}

/** ``others``: more routes by path (e.g. a page the rendered one navigates to). */
export function renderPage(element: ReactElement, { route = '/', path = '*', others = {} }: { route?: string; path?: string; others?: Record<string, ReactElement> } = {}) {
  setToken('tnt_test.token');
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { retry: false, staleTime: Infinity, refetchOnWindowFocus: false } });
  return render(
    <Providers client={client} env="test">
      <MemoryRouter initialEntries={[route]}>
        <ProjectProvider>
          <Routes>
            <Route path={path} element={<WhenProject>{element}</WhenProject>} />
            <Route path="/runs/:jobId" element={<div data-testid="run-page">run page</div>} />
            {Object.entries(others).map(([other, page]) => (
              <Route key={other} path={other} element={page} />
            ))}
          </Routes>
        </ProjectProvider>
      </MemoryRouter>
    </Providers>,
  );
}
